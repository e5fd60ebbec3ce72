//! Reading server-sent events (the client side of `GET /v1/events/stream`):
//! bytes in as they arrive, whole events out, per the WHATWG
//! `text/event-stream` rules the CLI needs — `id:` and `data:` fields
//! (several `data:` lines joined by `\n`), comment lines (`:` first, the
//! keep-alives) ignored, an event dispatched at a blank line, `\n`, `\r\n`
//! or `\r` line ends, one space after the colon dropped.

/// One event as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `id:` (the event stream's last one when it had none).
    pub id: Option<String>,
    /// Its `event:` type, if given.
    pub event: Option<String>,
    /// Its `data:` lines, joined.
    pub data: String,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    last_id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    /// A `\r` ended the last line: a `\n` right after it is the same end.
    after_cr: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds `chunk`; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.buffer);
                    self.line(&String::from_utf8_lossy(&line), &mut out);
                }
                _ => self.buffer.push(b),
            }
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    id: self.last_id.clone(),
                    event: self.event.take(),
                    data,
                });
            }
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_split_chunks() {
        let mut p = SseParser::new();
        let text = b": keep-alive\n\nid: 1-0\ndata: {\"a\":1}\n\nid:2-0\ndata: x\ndata: y\r\n\r\n: ping\n\n";
        // Fed one byte at a time: chunks may end anywhere.
        let got: Vec<SseEvent> = text.iter().flat_map(|b| p.push(&[*b])).collect();
        assert_eq!(
            got,
            [
                SseEvent {
                    id: Some("1-0".into()),
                    event: None,
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: Some("2-0".into()),
                    event: None,
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_an_unfinished_one_waits() {
        let mut p = SseParser::new();
        assert!(p.push(b"id: 5-5\n\nevent: step\ndata: half").is_empty());
        let got = p.push(b"\n\n");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].id.as_deref(),
            Some("5-5"),
            "the last id carries over"
        );
        assert_eq!(got[0].event.as_deref(), Some("step"));
        assert_eq!(got[0].data, "half");
    }
}
