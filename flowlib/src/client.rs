//! Typed requests on top of a [`Connection`]: dump flows, read and ensure the Geneve TLV map.

use crate::conn::{Connection, Error, Result};
use crate::wire::message::{
    encode_flow_stats_request, encode_tlv_table_mod, encode_tlv_table_request, tlv_command,
    Message, MultipartReply, TlvMap,
};
use crate::wire::FlowStats;

/// Every flow in `table` (255 = all) whose cookie matches `cookie/cookie_mask`, decoded.
pub async fn dump_flows(
    conn: &Connection,
    table: u8,
    cookie: u64,
    cookie_mask: u64,
) -> Result<Vec<FlowStats>> {
    let mut flows = Vec::new();
    dump_flows_with(conn, table, cookie, cookie_mask, |f| flows.push(f)).await?;
    Ok(flows)
}

/// Like [`dump_flows`], handing each flow to `each` as its reply part is decoded, so a large
/// table is never held as typed flows all at once (~600 bytes each against ~100 on the wire).
pub async fn dump_flows_with(
    conn: &Connection,
    table: u8,
    cookie: u64,
    cookie_mask: u64,
    mut each: impl FnMut(FlowStats),
) -> Result<usize> {
    let mut req = Vec::with_capacity(64);
    encode_flow_stats_request(table, cookie, cookie_mask, 0, &mut req);
    let parts = conn.multipart(req).await?;
    let mut n = 0;
    for part in parts {
        match Message::decode(part.as_slice()) {
            Ok((
                _,
                Message::MultipartReply {
                    body: MultipartReply::Flows(f),
                    ..
                },
            )) => {
                n += f.len();
                f.into_iter().for_each(&mut each);
            }
            Ok((_, other)) => {
                return Err(Error::Protocol(format!(
                    "unexpected reply to a flow-stats request: {other:?}"
                )))
            }
            Err(e) => return Err(Error::Decode(e)),
        }
    }
    Ok(n)
}

/// The switch's current TLV mappings.
pub async fn tlv_maps(conn: &Connection) -> Result<Vec<TlvMap>> {
    let mut req = Vec::with_capacity(16);
    encode_tlv_table_request(0, &mut req);
    let reply = conn.request(req).await?;
    match Message::decode(reply.as_slice()) {
        Ok((_, Message::TlvTableReply(r))) => Ok(r.maps),
        Ok((_, other)) => Err(Error::Protocol(format!(
            "unexpected reply to a TLV table request: {other:?}"
        ))),
        Err(e) => Err(Error::Decode(e)),
    }
}

/// What `ensure_tlv_maps` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlvOutcome {
    /// Mappings that were missing and are now installed.
    pub installed: Vec<TlvMap>,
    /// Mappings that were already there (reused, not sent again).
    pub reused: Vec<TlvMap>,
}

/// Makes sure each mapping exists: an existing identical mapping is reused (the TLV table is
/// shared by every controller of the switch and survives reconnects, and re-adding one is an
/// error in OVS); missing ones are added in one message, confirmed by a barrier. A mapping whose
/// index or option is already used differently is an error from the switch, returned as is.
pub async fn ensure_tlv_maps(conn: &Connection, wanted: &[TlvMap]) -> Result<TlvOutcome> {
    let have = tlv_maps(conn).await?;
    let mut out = TlvOutcome::default();
    let mut missing = Vec::new();
    for m in wanted {
        if have.contains(m) {
            out.reused.push(*m);
        } else {
            missing.push(*m);
        }
    }
    if !missing.is_empty() {
        let mut msg = Vec::with_capacity(16 + 8 * missing.len());
        encode_tlv_table_mod(tlv_command::ADD, &missing, 0, &mut msg);
        conn.send(msg).await?;
        conn.barrier().await?;
        // An error for the mod arrives as an event before the barrier reply; read back to be sure.
        let now = tlv_maps(conn).await?;
        if let Some(m) = missing.iter().find(|m| !now.contains(m)) {
            return Err(Error::Protocol(format!(
                "the switch did not install TLV mapping {{class={:#06x},type={:#04x},len={}}}->tun_metadata{}",
                m.option_class, m.option_type, m.option_len, m.index
            )));
        }
        out.installed = missing;
    }
    Ok(out)
}
