//! kovs-cni's hand-written HTTP/1.1 response reader (the agent's answers come through it; the
//! agent's own server is hyper), and the agent bodies it then decodes.
//!
//! Invariants: the response does not depend on how the bytes arrive (one read or many small
//! ones); a final response is never 1xx and its body stays within the cap.
//!
//! Input: the first byte picks the read size (1 to 64 bytes), the rest is what the server sent.
#![no_main]

use std::io::{self, Read};

use kovs_cni::client::{read_response, HttpResponse, ResponseError, MAX_BODY};
use kovs_cni::protocol::{CniResponse, ErrorBody, StatusResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, sent)) = data.split_first() else {
        return;
    };
    let whole = outcome(read_response(Pieces::new(sent, sent.len().max(1))));
    let pieces = outcome(read_response(Pieces::new(sent, 1 + step as usize % 64)));
    assert_eq!(whole, pieces, "the response depends on how it was read");
    if let Ok(response) = whole {
        assert!((200..600).contains(&response.status), "{}", response.status);
        assert!(response.body.len() <= MAX_BODY);
        let _ = serde_json::from_slice::<CniResponse>(&response.body);
        let _ = serde_json::from_slice::<StatusResponse>(&response.body);
        let _ = serde_json::from_slice::<ErrorBody>(&response.body);
    }
});

/// Comparable: an I/O error by its kind and text.
fn outcome(r: Result<HttpResponse, ResponseError>) -> Result<HttpResponse, String> {
    r.map_err(|e| match e {
        ResponseError::Io(e) => format!("io {:?}: {e}", e.kind()),
        ResponseError::Malformed(m) => format!("malformed: {m}"),
    })
}

/// A peer that sends `data` in reads of at most `step` bytes, then closes.
struct Pieces<'a> {
    data: &'a [u8],
    step: usize,
}

impl<'a> Pieces<'a> {
    fn new(data: &'a [u8], step: usize) -> Self {
        Pieces { data, step }
    }
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
