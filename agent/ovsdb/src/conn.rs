//! One JSON-RPC 1.0 connection to ovsdb-server (RFC 7047 §4).
//!
//! A reader task owns the socket's read half: it answers the server's `echo` probes itself
//! (so a busy caller never gets the connection dropped), completes pending requests by id,
//! and forwards notifications on an unbounded channel — unbounded so that a slow consumer can
//! never stall replies to requests. A writer task owns the write half and serialises messages
//! from all [`Client`] clones. When either side fails, every pending and later request fails
//! with [`Error::Disconnected`] and the notification channel closes: that is how monitors
//! learn the connection is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::framing::Splitter;
use crate::schema::DbSchema;
use crate::Error;

/// A message the server sent without being asked (JSON-RPC notification).
#[derive(Debug, Clone)]
pub enum Notification {
    /// `update` (reply format of `monitor`): `<table-updates>` with old/new rows.
    Update { monitor_id: Value, updates: Value },
    /// `update2` (for `monitor_cond`): `<table-updates2>` with initial/insert/modify/delete.
    Update2 { monitor_id: Value, updates: Value },
    /// `update3` (for `monitor_cond_since`): as `update2`, plus the last transaction id.
    Update3 {
        monitor_id: Value,
        last_txn_id: String,
        updates: Value,
    },
    /// Anything else (`locked`, `stolen`, ...), passed through.
    Other { method: String, params: Value },
}

type Reply = oneshot::Sender<Result<Value, Error>>;

/// Requests waiting for a reply; `closed` is set once, with the reason, when the connection
/// ends, so a request can never be registered after the reader stopped looking.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, (String, Reply)>,
    closed: Option<String>,
}

struct Shared {
    pending: Mutex<Pending>,
    out: mpsc::UnboundedSender<Vec<u8>>,
    /// Flips to true when the connection ends, to stop the other task.
    closed_tx: watch::Sender<bool>,
}

impl Shared {
    /// Ends the connection: fails every pending request with `reason` (first reason wins).
    fn close(&self, reason: String) {
        let waiting = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.closed.is_some() {
                return;
            }
            tracing::debug!(%reason, "ovsdb connection closed");
            p.closed = Some(reason.clone());
            std::mem::take(&mut p.waiting)
        };
        for (_, (_, reply)) in waiting {
            let _ = reply.send(Err(Error::Disconnected(reason.clone())));
        }
        let _ = self.closed_tx.send(true);
    }

    fn send(&self, msg: &Value) -> Result<(), Error> {
        let bytes = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
        self.out
            .send(bytes)
            .map_err(|_| Error::Disconnected("writer stopped".into()))
    }
}

struct Inner {
    target: String,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    closed_rx: watch::Receiver<bool>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Inner {
    /// The tasks hold the socket; stop them when the last [`Client`] clone goes away.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A connection to ovsdb-server; cheap to clone, closed when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.inner.target)
            .field("closed", &self.close_reason())
            .finish()
    }
}

pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Opens `unix:PATH` or `tcp:HOST:PORT` (the `ovs-vsctl --db` syntax).
async fn open(target: &str) -> Result<(BoxRead, BoxWrite), Error> {
    let connect_err = |source| Error::Connect {
        target: target.to_string(),
        source,
    };
    if let Some(path) = target.strip_prefix("unix:") {
        let s = tokio::net::UnixStream::connect(path)
            .await
            .map_err(connect_err)?;
        let (r, w) = s.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else if let Some(addr) = target.strip_prefix("tcp:") {
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(connect_err)?;
        // Requests are small and latency-bound.
        s.set_nodelay(true).map_err(connect_err)?;
        let (r, w) = s.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else {
        Err(Error::BadTarget(target.to_string()))
    }
}

impl Client {
    /// Connects and starts the reader and writer tasks (needs a tokio runtime). Returns the
    /// notification channel; it closes when the connection does.
    pub async fn connect(
        target: &str,
    ) -> Result<(Client, mpsc::UnboundedReceiver<Notification>), Error> {
        let (read, write) = open(target).await?;
        Ok(Client::from_io(target, read, write))
    }

    /// Runs the protocol over an already open byte stream (tests use an in-memory pipe).
    pub(crate) fn from_io(
        target: &str,
        read: BoxRead,
        write: BoxWrite,
    ) -> (Client, mpsc::UnboundedReceiver<Notification>) {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (note_tx, note_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            out: out_tx,
            closed_tx,
        });
        let reader = tokio::spawn(read_loop(read, shared.clone(), note_tx, closed_rx.clone()));
        let writer = tokio::spawn(write_loop(write, out_rx, shared.clone(), closed_rx.clone()));
        tracing::debug!(target, "ovsdb connected");
        let client = Client {
            inner: Arc::new(Inner {
                target: target.to_string(),
                shared,
                next_id: AtomicU64::new(1),
                closed_rx,
                tasks: [reader, writer],
            }),
        };
        (client, note_rx)
    }

    /// Why the connection ended, or `None` while it is up.
    pub fn close_reason(&self) -> Option<String> {
        self.inner
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed
            .clone()
    }

    /// Resolves when the connection has ended.
    pub async fn closed(&self) {
        let mut rx = self.inner.closed_rx.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sends one request and waits for its reply; a JSON-RPC error becomes [`Error::Rpc`].
    /// Dropping the future abandons the request (its reply is discarded when it arrives).
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self
                .inner
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(reason) = &p.closed {
                return Err(Error::Disconnected(reason.clone()));
            }
            p.waiting.insert(id, (method.to_string(), tx));
        }
        let msg = json!({"method": method, "params": params, "id": id});
        if let Err(e) = self.inner.shared.send(&msg) {
            self.inner
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiting
                .remove(&id);
            return Err(e);
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::Disconnected("reader stopped".into())))
    }

    /// `echo`: a liveness probe; the server returns the params.
    pub async fn echo(&self) -> Result<(), Error> {
        self.request("echo", json!(["kovs"])).await.map(|_| ())
    }

    /// `list_dbs`: the databases the server has.
    pub async fn list_dbs(&self) -> Result<Vec<String>, Error> {
        let v = self.request("list_dbs", json!([])).await?;
        serde_json::from_value(v).map_err(|e| Error::decode(format!("list_dbs reply: {e}")))
    }

    /// `get_schema`, parsed.
    pub async fn get_schema(&self, db: &str) -> Result<DbSchema, Error> {
        let v = self.request("get_schema", json!([db])).await?;
        DbSchema::from_json(&v)
    }

    /// `transact`: runs `ops` atomically. Returns one result per operation; fails with
    /// [`Error::Transaction`] if any operation (or the commit) failed, in which case nothing
    /// was changed.
    pub async fn transact(&self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>, Error> {
        let n_ops = ops.len();
        let mut params = Vec::with_capacity(n_ops + 1);
        params.push(Value::String(db.to_string()));
        params.extend(ops);
        let v = self.request("transact", Value::Array(params)).await?;
        transact_results(v, n_ops)
    }

    /// `monitor` (RFC 7047 §4.1.5): returns the initial `<table-updates>`; changes then come
    /// as [`Notification::Update`] with this `monitor_id`.
    pub async fn monitor(
        &self,
        db: &str,
        monitor_id: Value,
        requests: Value,
    ) -> Result<Value, Error> {
        self.request("monitor", json!([db, monitor_id, requests]))
            .await
    }

    /// `monitor_cond` (OVSDB extension): like `monitor`, with `where` conditions allowed and
    /// changes as diffs ([`Notification::Update2`]); returns the initial `<table-updates2>`.
    pub async fn monitor_cond(
        &self,
        db: &str,
        monitor_id: Value,
        requests: Value,
    ) -> Result<Value, Error> {
        self.request("monitor_cond", json!([db, monitor_id, requests]))
            .await
    }

    /// `monitor_cancel`: stops a monitor; no notifications for it follow the reply.
    pub async fn monitor_cancel(&self, monitor_id: Value) -> Result<(), Error> {
        self.request("monitor_cancel", json!([monitor_id]))
            .await
            .map(|_| ())
    }
}

async fn write_loop(
    mut w: BoxWrite,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(mut buf) = msg else { break };
        // Coalesce whatever else is queued into one write.
        while let Ok(more) = rx.try_recv() {
            buf.extend_from_slice(&more);
        }
        if let Err(e) = w.write_all(&buf).await {
            shared.close(format!("write failed: {e}"));
            break;
        }
    }
    let _ = w.shutdown().await;
}

async fn read_loop(
    mut r: BoxRead,
    shared: Arc<Shared>,
    notes: mpsc::UnboundedSender<Notification>,
    mut closed: watch::Receiver<bool>,
) {
    let mut splitter = Splitter::new();
    let mut buf = vec![0u8; 64 * 1024];
    let reason = 'conn: loop {
        let n = tokio::select! {
            n = r.read(&mut buf) => n,
            _ = closed.wait_for(|c| *c) => break 'conn "closed".to_string(),
        };
        match n {
            Ok(0) => {
                break if splitter.pending() > 0 {
                    "server closed the connection mid-message".to_string()
                } else {
                    "server closed the connection".to_string()
                }
            }
            Ok(n) => splitter.extend(&buf[..n]),
            Err(e) => break format!("read failed: {e}"),
        }
        loop {
            match splitter.next_message() {
                Ok(Some(msg)) => {
                    if let Err(e) = dispatch(msg, &shared, &notes) {
                        break 'conn e.to_string();
                    }
                }
                Ok(None) => break,
                Err(e) => break 'conn e.to_string(),
            }
        }
    };
    shared.close(reason);
}

/// Routes one message: a reply to its request, a server request (`echo`) answered, a
/// notification forwarded.
fn dispatch(
    mut msg: Value,
    shared: &Shared,
    notes: &mpsc::UnboundedSender<Notification>,
) -> Result<(), Error> {
    let Some(obj) = msg.as_object_mut() else {
        return Err(Error::Protocol(format!("message is not an object: {msg}")));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if let Some(method) = obj.get("method").and_then(Value::as_str).map(String::from) {
        let params = obj.remove("params").unwrap_or(Value::Null);
        if !id.is_null() {
            // A request from the server: only `echo` is defined for clients.
            let reply = if method == "echo" {
                json!({"id": id, "result": params, "error": null})
            } else {
                json!({"id": id, "result": null, "error": format!("unknown method {method}")})
            };
            return shared.send(&reply);
        }
        // Nobody listening is fine (e.g. a client that never monitors).
        let _ = notes.send(Notification::parse(method, params)?);
        return Ok(());
    }
    let Some(id) = id.as_u64() else {
        tracing::debug!(%id, "ovsdb reply with an id we never sent");
        return Ok(());
    };
    let entry = shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .waiting
        .remove(&id);
    let Some((method, reply)) = entry else {
        // Abandoned by the caller.
        return Ok(());
    };
    let error = obj.remove("error").unwrap_or(Value::Null);
    let result = if error.is_null() {
        Ok(obj.remove("result").unwrap_or(Value::Null))
    } else {
        Err(Error::Rpc { method, error })
    };
    let _ = reply.send(result);
    Ok(())
}

/// Checks a `transact` reply (RFC 7047 §4.1.3): one result per operation, or the first
/// operation's (or the commit's) error.
pub fn transact_results(reply: Value, n_ops: usize) -> Result<Vec<Value>, Error> {
    let Value::Array(results) = reply else {
        return Err(Error::Protocol(format!(
            "transact reply is not an array: {reply}"
        )));
    };
    for (index, r) in results.iter().enumerate() {
        if let Some(err) = r.get("error") {
            return Err(Error::Transaction {
                index,
                error: err.as_str().unwrap_or_default().to_string(),
                details: r
                    .get("details")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    if results.len() < n_ops {
        return Err(Error::Protocol(format!(
            "transact returned {} results for {n_ops} operations",
            results.len()
        )));
    }
    Ok(results)
}

impl Notification {
    /// Reads a JSON-RPC notification the server sent (`method` and `params`).
    pub fn parse(method: String, params: Value) -> Result<Notification, Error> {
        let bad = || Error::Protocol(format!("bad {method} notification: {params}"));
        Ok(match method.as_str() {
            "update" | "update2" => {
                let Some([id, updates]) = params.as_array().map(Vec::as_slice) else {
                    return Err(bad());
                };
                let (monitor_id, updates) = (id.clone(), updates.clone());
                if method == "update" {
                    Notification::Update {
                        monitor_id,
                        updates,
                    }
                } else {
                    Notification::Update2 {
                        monitor_id,
                        updates,
                    }
                }
            }
            "update3" => {
                let Some([id, txn, updates]) = params.as_array().map(Vec::as_slice) else {
                    return Err(bad());
                };
                Notification::Update3 {
                    monitor_id: id.clone(),
                    last_txn_id: txn.as_str().unwrap_or_default().to_string(),
                    updates: updates.clone(),
                }
            }
            _ => Notification::Other { method, params },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    /// A fake server on an in-memory pipe: the client must answer its `echo` (sent split
    /// across writes, glued to a notification) and match out-of-order replies by id.
    #[tokio::test]
    async fn echo_replies_and_out_of_order_ids() {
        let (client_side, server_side) = tokio::io::duplex(4096);
        let (cr, cw) = tokio::io::split(client_side);
        let (client, mut notes) = Client::from_io("test", Box::new(cr), Box::new(cw));
        let (sr, mut sw) = tokio::io::split(server_side);
        let server = tokio::spawn(async move {
            let mut sr = BufReader::new(sr);
            let mut splitter = Splitter::new();
            let mut ids = Vec::new();
            // Two requests arrive; answer them in reverse order after an echo + update.
            while ids.len() < 2 {
                let buf = sr.fill_buf().await.unwrap().to_vec();
                sr.consume(buf.len());
                splitter.extend(&buf);
                while let Some(m) = splitter.next_message().unwrap() {
                    ids.push((m["id"].clone(), m["method"].clone()));
                }
            }
            let wire = br#"{"id":"echo","method":"echo","params":[]}{"id":null,"method":"update2","params":["m",{"T":{}}]}"#;
            sw.write_all(&wire[..10]).await.unwrap();
            sw.write_all(&wire[10..]).await.unwrap();
            for (id, method) in ids.iter().rev() {
                let reply = json!({"id": id, "result": [method], "error": null});
                sw.write_all(reply.to_string().as_bytes()).await.unwrap();
            }
            // The client's answer to the echo.
            loop {
                let buf = sr.fill_buf().await.unwrap().to_vec();
                sr.consume(buf.len());
                splitter.extend(&buf);
                if let Some(m) = splitter.next_message().unwrap() {
                    return m;
                }
            }
        });
        let (a, b) = tokio::join!(
            client.request("first", json!([])),
            client.request("second", json!([]))
        );
        assert_eq!(a.unwrap(), json!(["first"]));
        assert_eq!(b.unwrap(), json!(["second"]));
        let echo_reply = server.await.unwrap();
        assert_eq!(
            echo_reply,
            json!({"id": "echo", "result": [], "error": null})
        );
        match notes.recv().await.unwrap() {
            Notification::Update2 { monitor_id, .. } => assert_eq!(monitor_id, json!("m")),
            other => panic!("unexpected {other:?}"),
        }
        // The fake server is gone: the connection closes and requests fail.
        assert!(notes.recv().await.is_none());
        assert!(matches!(
            client.request("late", json!([])).await,
            Err(Error::Disconnected(_))
        ));
        assert!(client.close_reason().is_some());
    }
}
