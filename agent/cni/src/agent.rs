//! The agent's CNI API as typed calls: one HTTP exchange each, its status and body sorted into
//! what the plugin needs to tell the runtime (unreachable, not ready, refused, garbled).

use std::time::Duration;

use serde::Serialize;

use crate::client::{ClientError, HttpResponse, UnixHttpClient};
use crate::protocol::{
    CheckRequest, CniRequest, CniResponse, ErrorBody, GcRequest, StatusResponse, ADD_PATH,
    CHECK_PATH, DEL_PATH, GC_PATH, NOT_READY_STATUS, STATUS_PATH,
};

/// ADD may wait on the server for the pod's address (20 s, as Kube-OVN) and then its flows.
pub const ADD_TIMEOUT: Duration = Duration::from_secs(60);
/// DEL, CHECK and GC do local work only.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// A local listener accepts at once; only a full backlog makes a connect wait.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No answer: nothing listens, the connection broke, or the deadline passed.
    #[error(transparent)]
    Unreachable(#[from] ClientError),
    /// The agent answered 503: it cannot serve yet; the reason it gave.
    #[error("{0}")]
    NotReady(String),
    /// Any other 4xx/5xx, with the agent's `error` message.
    #[error("{message}")]
    Refused { status: u16, message: String },
    /// A success whose body does not decode.
    #[error("{0}")]
    BadAnswer(String),
}

#[derive(Debug, Clone)]
pub struct AgentClient {
    http: UnixHttpClient,
}

impl AgentClient {
    pub fn new(socket: &str) -> Self {
        AgentClient {
            http: UnixHttpClient::new(socket, CONNECT_TIMEOUT),
        }
    }

    pub fn socket(&self) -> String {
        self.http.socket().display().to_string()
    }

    pub fn add(&self, request: &CniRequest) -> Result<CniResponse, AgentError> {
        let response = self.post(ADD_PATH, request, ADD_TIMEOUT)?;
        serde_json::from_slice(&response.body).map_err(|e| {
            AgentError::BadAnswer(format!(
                "the answer to {ADD_PATH} is not a CniResponse: {e}"
            ))
        })
    }

    pub fn del(&self, request: &CniRequest) -> Result<(), AgentError> {
        self.post(DEL_PATH, request, CALL_TIMEOUT).map(drop)
    }

    pub fn check(&self, request: &CheckRequest) -> Result<(), AgentError> {
        self.post(CHECK_PATH, request, CALL_TIMEOUT).map(drop)
    }

    pub fn gc(&self, request: &GcRequest) -> Result<(), AgentError> {
        self.post(GC_PATH, request, CALL_TIMEOUT).map(drop)
    }

    /// Ok when ready. A 200 saying `"ready": false` counts as not ready too.
    pub fn status(&self) -> Result<(), AgentError> {
        let response = self
            .http
            .request("GET", STATUS_PATH, None, STATUS_TIMEOUT)?;
        let response = classify(response)?;
        match serde_json::from_slice::<StatusResponse>(&response.body) {
            Ok(StatusResponse {
                ready: false,
                error,
            }) => Err(AgentError::NotReady(error)),
            // An empty or other body with a 200 is ready: the status code is the answer.
            _ => Ok(()),
        }
    }

    fn post(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<HttpResponse, AgentError> {
        let body = serde_json::to_vec(body).expect("protocol types always serialise");
        classify(self.http.request("POST", path, Some(&body), timeout)?)
    }
}

/// 2xx passes; 503 is "not ready"; anything else is refused with the body's message.
fn classify(response: HttpResponse) -> Result<HttpResponse, AgentError> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let message = error_message(&response);
    if response.status == NOT_READY_STATUS {
        Err(AgentError::NotReady(message))
    } else {
        Err(AgentError::Refused {
            status: response.status,
            message,
        })
    }
}

/// The `error` of a JSON body (Kube-OVN's `CniResponse`), else the body's text, else the status.
fn error_message(response: &HttpResponse) -> String {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(&response.body) {
        if !error.is_empty() {
            return error;
        }
    }
    let text = String::from_utf8_lossy(&response.body);
    let text = text.trim();
    if text.is_empty() || text.starts_with('{') {
        format!("HTTP {} without a message", response.status)
    } else {
        text.chars().take(1000).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_sort_into_outcomes() {
        assert!(classify(response(204, "")).is_ok());
        assert!(matches!(
            classify(response(503, r#"{"error":"first sync pending"}"#)),
            Err(AgentError::NotReady(m)) if m == "first sync pending"
        ));
        assert!(matches!(
            classify(response(500, r#"{"ips":null,"error":"no address allocated to pod ns/p"}"#)),
            Err(AgentError::Refused { status: 500, message }) if message == "no address allocated to pod ns/p"
        ));
        assert!(matches!(
            classify(response(400, "provider x is not bound to any subnet\n")),
            Err(AgentError::Refused { status: 400, message }) if message == "provider x is not bound to any subnet"
        ));
        assert!(matches!(
            classify(response(404, "{}")),
            Err(AgentError::Refused { message, .. }) if message == "HTTP 404 without a message"
        ));
    }
}
