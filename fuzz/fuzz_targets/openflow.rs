//! OpenFlow bytes from the switch (or anything on its socket): every decoder in
//! `flowlib::wire`, and the frame accessors of the connection. None may panic, and whatever
//! decodes must encode back to something that decodes to the same value.
#![no_main]

use bytes::Bytes;
use flowlib::conn::Frame;
use flowlib::wire::bundle::{
    self, append_bundle_add, decode_bundle_add, decode_bundle_ctrl, decode_error,
    encode_bundle_ctrl, encode_error,
};
use flowlib::wire::message::{
    encode_tlv_table_mod, hello_versions, split_messages, GroupMod, Message, MeterMod,
    MultipartReply,
};
use flowlib::wire::{Action, FlowMod, FlowStats, Header, Instructions, Match, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Fragments the connection decodes inside messages.
    actions(data);
    matches(data);
    instructions(data);
    flow_stats(data);

    // Whole messages, as the stream framers cut them.
    let split: Vec<_> = split_messages(data).collect();
    let split_by_bundle: Vec<_> = bundle::split_messages(data).collect();
    assert_eq!(
        split.len(),
        split_by_bundle.len(),
        "the two stream splitters disagree"
    );
    let mut consumed = 0;
    for (a, b) in split.iter().zip(&split_by_bundle) {
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "the two stream splitters disagree");
                consumed += a.len();
                message(a);
            }
            (Err(_), Err(_)) => {}
            _ => panic!("the two stream splitters disagree: {a:?} vs {b:?}"),
        }
    }
    assert!(consumed <= data.len());
    // A message that is not cut out of a stream: trailing bytes, a short buffer.
    message(data);
});

fn message(msg: &[u8]) {
    let _ = hello_versions(msg);
    if let Ok((h, m)) = Message::decode(msg) {
        assert!(h.length as usize <= msg.len());
        let full = &msg[..h.length as usize];
        match m {
            Message::FlowMod(fm) => {
                let _ = fm.flow.to_string();
                assert_eq!(*fm, FlowMod::decode(full).expect("decoded once"));
                let mut out = Vec::new();
                fm.encode(h.xid, &mut out);
                assert_eq!(
                    FlowMod::decode(&out).ok().as_ref(),
                    Some(&*fm),
                    "{out:02x?}"
                );
            }
            Message::GroupMod(gm) => {
                let mut out = Vec::new();
                gm.encode(h.xid, &mut out);
                assert_eq!(GroupMod::decode(&out).ok(), Some(gm), "{out:02x?}");
            }
            Message::MeterMod(mm) => {
                let mut out = Vec::new();
                mm.encode(h.xid, &mut out);
                assert_eq!(MeterMod::decode(&out).ok(), Some(mm), "{out:02x?}");
            }
            Message::TlvTableMod(t) => {
                let mut out = Vec::new();
                encode_tlv_table_mod(t.command, &t.maps, h.xid, &mut out);
                match Message::decode(&out) {
                    Ok((_, Message::TlvTableMod(back))) => assert_eq!(back, t),
                    other => panic!("re-encoded TLV table mod decodes as {other:?}"),
                }
            }
            Message::MultipartReply {
                body: MultipartReply::Flows(flows),
                ..
            } => {
                for f in &flows {
                    let _ = f.flow.to_string();
                    let mut out = Vec::new();
                    f.encode(&mut out);
                    let mut r = Reader::new(&out);
                    assert_eq!(FlowStats::decode(&mut r).ok().as_ref(), Some(f));
                    assert!(r.is_empty());
                }
            }
            _ => {}
        }
    }
    if let Ok((h, ctrl)) = decode_bundle_ctrl(msg) {
        let mut out = Vec::new();
        encode_bundle_ctrl(&mut out, h.xid, &ctrl);
        assert_eq!(decode_bundle_ctrl(&out).ok(), Some((h_len(&out, h), ctrl)));
    }
    if let Ok((h, add)) = decode_bundle_add(msg) {
        let mut out = Vec::new();
        if append_bundle_add(&mut out, h.xid, add.bundle_id, add.flags, add.inner).is_ok() {
            let (h2, back) = decode_bundle_add(&out).expect("a bundle add we encoded");
            assert_eq!(h2.xid, h.xid);
            assert_eq!(
                (back.bundle_id, back.flags, back.inner),
                (add.bundle_id, add.flags, add.inner)
            );
            assert!(back.properties.is_empty());
        }
    }
    if let Ok(e) = decode_error(msg) {
        let _ = e.code.to_string();
        let _ = e.offending_header();
        let mut out = Vec::new();
        encode_error(&mut out, e.header.xid, e.code, e.data);
        let back = decode_error(&out).expect("an error we encoded");
        assert_eq!(back.code, e.code);
        assert!(e.data.starts_with(back.data));
    }
    if let Ok(frame) = Frame::new(Bytes::copy_from_slice(msg)) {
        let _ = frame.experimenter();
        let _ = frame.multipart_more();
        let _ = frame.multipart_body();
        if let Some(e) = frame.error() {
            let _ = e.name();
        }
        let _ = frame.bundle_ctrl();
    }
}

/// `h` with the length of `out` (a re-encoded message drops what the original carried after
/// the fields we decode, e.g. bundle properties).
fn h_len(out: &[u8], h: Header) -> Header {
    Header {
        length: out.len() as u16,
        ..h
    }
}

fn actions(data: &[u8]) {
    if let Ok(list) = Action::decode_list(data) {
        let mut out = Vec::new();
        for a in &list {
            a.encode(&mut out);
            let mut s = String::new();
            flowlib::wire::display::format_action(&mut s, a);
        }
        assert_eq!(
            Action::decode_list(&out).ok().as_ref(),
            Some(&list),
            "{out:02x?}"
        );
    }
}

fn matches(data: &[u8]) {
    if let Ok(m) = Match::decode_oxms(data) {
        let mut out = Vec::new();
        m.encode(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(Match::decode(&mut r).ok().as_ref(), Some(&m), "{out:02x?}");
        assert!(r.is_empty());
        let mut s = String::new();
        flowlib::wire::display::format_match(&mut s, &m, None);
    }
}

fn instructions(data: &[u8]) {
    if let Ok(ins) = Instructions::decode(data) {
        let mut out = Vec::new();
        ins.encode(&mut out);
        assert_eq!(
            Instructions::decode(&out).ok().as_ref(),
            Some(&ins),
            "{out:02x?}"
        );
        let mut s = String::new();
        flowlib::wire::display::format_instructions(&mut s, &ins);
    }
}

fn flow_stats(data: &[u8]) {
    let mut r = Reader::new(data);
    while let Ok(f) = FlowStats::decode(&mut r) {
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(FlowStats::decode(&mut Reader::new(&out)).ok(), Some(f));
    }
}
