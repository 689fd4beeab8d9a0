//! A Server-Sent Events parser (the `text/event-stream` format of the HTML
//! standard): bytes in, whole events out. Lines end in LF, CRLF or CR; a
//! blank line dispatches the event; `:` starts a comment (keep-alives);
//! `data` lines are joined with LF.

use std::collections::VecDeque;

/// Longest line accepted; a longer one is a protocol error, not a reason to
/// grow memory without bound.
pub const MAX_SSE_LINE_BYTES: usize = 4 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseMessage {
    /// The last event id of the stream when this event was dispatched (its
    /// own `id` field, or an earlier one: ids carry over, as in browsers).
    pub id: Option<String>,
    /// The `event` field (`message` when absent).
    pub event: String,
    /// The `data` lines joined with LF.
    pub data: String,
}

/// An incremental parser; feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting the next one belongs to it.
    after_cr: bool,
    /// The `id` buffer: set by `id` lines, kept across events.
    id: Option<String>,
    /// The stream's last event id, taken from `id` at each dispatch (also
    /// for an event without data, which is how a server can move it alone).
    last_event_id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    ready: VecDeque<SseMessage>,
}

/// A line over [`MAX_SSE_LINE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event stream line longer than {MAX_SSE_LINE_BYTES} bytes")]
pub struct LineTooLong;

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), LineTooLong> {
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match byte {
                b'\n' if after_cr => {}
                b'\n' => self.end_line(),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line();
                }
                _ => {
                    if self.line.len() >= MAX_SSE_LINE_BYTES {
                        return Err(LineTooLong);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(())
    }

    /// The last event id dispatched: what to send as `Last-Event-ID` when
    /// reconnecting.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The next complete event, if any.
    pub fn next_message(&mut self) -> Option<SseMessage> {
        self.ready.pop_front()
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            return; // a comment
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {} // `retry` and unknown fields are ignored
        }
    }

    fn dispatch(&mut self) {
        self.last_event_id.clone_from(&self.id);
        let event = self.event.take();
        if let Some(data) = self.data.take() {
            self.ready.push_back(SseMessage {
                id: self.last_event_id.clone(),
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseMessage> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk).unwrap();
            while let Some(message) = parser.next_message() {
                out.push(message);
            }
        }
        out
    }

    fn message(id: &str, event: &str, data: &str) -> SseMessage {
        SseMessage {
            id: Some(id.into()),
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_are_split_at_blank_lines_and_comments_are_skipped() {
        let got = parse(&[
            b": keep-alive\n\nid: 1\nevent: job\ndata: {\"a\":1}\n\nid:2\nevent:job\ndata:x\n\n",
        ]);
        assert_eq!(
            got,
            [message("1", "job", "{\"a\":1}"), message("2", "job", "x")]
        );
    }

    #[test]
    fn chunks_may_split_anywhere_and_lines_may_end_in_crlf_or_cr() {
        let text = b"id: 7\r\nevent: job\r\ndata: a\r\ndata: b\r\n\r\nid: 8\rdata: c\r\r";
        let whole = parse(&[text]);
        let bytewise: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(parse(&bytewise), whole);
        assert_eq!(
            whole,
            [message("7", "job", "a\nb"), message("8", "message", "c")]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_but_moves_the_last_id() {
        let mut parser = SseParser::new();
        parser.feed(b"id: 3\nevent: job\n\n").unwrap();
        assert_eq!(parser.next_message(), None);
        assert_eq!(parser.last_event_id(), Some("3"));
        parser.feed(b"data: x\n\nid: 4\ndata: unfinished").unwrap();
        assert_eq!(parser.next_message(), Some(message("3", "message", "x")));
        assert_eq!(parser.next_message(), None);
        assert_eq!(parser.last_event_id(), Some("3"), "4 was never dispatched");
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut parser = SseParser::new();
        let long = vec![b'x'; MAX_SSE_LINE_BYTES + 1];
        assert_eq!(parser.feed(&long), Err(LineTooLong));
    }
}
