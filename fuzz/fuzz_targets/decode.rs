//! Fuzzes every decoder in flowlib's wire codec: none may panic, whatever the bytes.
#![no_main]

use flowlib::wire::message::{split_messages, Message};
use flowlib::wire::{Action, FlowMod, Instructions, Match};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Message::decode(data);
    let _ = FlowMod::decode(data);
    let _ = Action::decode_list(data);
    let _ = Match::decode_oxms(data);
    let _ = Instructions::decode(data);
    for m in split_messages(data) {
        if let Ok(m) = m {
            if let Ok((_, msg)) = Message::decode(m) {
                // Whatever decodes must also display.
                if let Message::FlowMod(fm) = msg {
                    let _ = fm.flow.to_string();
                }
            }
        }
    }
});
