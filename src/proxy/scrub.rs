//! Response scrubbing: a credential the proxy injected never travels back to
//! the child. An upstream may quote the request — a redirect whose `Location`
//! keeps a query-string key, a pagination link, an error body echoing the URL
//! or the `Authorization` header — so every response header and every body
//! byte of an injected request is searched for the injected values and each
//! occurrence replaced by the placeholder.
//!
//! The body search streams: each chunk is searched together with the last
//! `longest pattern - 1` bytes of the previous one (held back, since they may
//! start a match), so a value split across chunk boundaries is still found,
//! and memory stays bounded whatever the body size.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use hyper::body::{Body, Frame, SizeHint};
use memchr::memmem::Finder;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The values to hide and what to put in their place.
#[derive(Debug)]
pub struct Scrubber {
    finders: Vec<Finder<'static>>,
    replacement: Bytes,
    /// Bytes held back between chunks: the longest pattern minus one.
    hold: usize,
}

impl Scrubber {
    /// A scrubber replacing each of `patterns` (empty ones ignored) with
    /// `replacement`; `None` when there is nothing to hide.
    pub fn new(patterns: impl IntoIterator<Item = Vec<u8>>, replacement: &str) -> Option<Scrubber> {
        let mut patterns: Vec<Vec<u8>> = patterns.into_iter().filter(|p| !p.is_empty()).collect();
        patterns.sort();
        patterns.dedup();
        let hold = patterns.iter().map(Vec::len).max()?.saturating_sub(1);
        let finders = patterns.into_iter().map(|p| Finder::new(&p).into_owned()).collect();
        Some(Scrubber { finders, replacement: Bytes::copy_from_slice(replacement.as_bytes()), hold })
    }

    /// The earliest match at or after `from`: (start, length).
    fn next_match(&self, hay: &[u8], from: usize) -> Option<(usize, usize)> {
        self.finders
            .iter()
            .filter_map(|f| f.find(&hay[from..]).map(|i| (from + i, f.needle().len())))
            .min_by_key(|&(start, len)| (start, std::cmp::Reverse(len)))
    }

    /// `hay` with every match replaced, or `None` when there is none.
    pub fn replace_all(&self, hay: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some((start, len)) = self.next_match(hay, pos) {
            out.extend_from_slice(&hay[pos..start]);
            out.extend_from_slice(&self.replacement);
            pos = start + len;
        }
        if pos == 0 && out.is_empty() {
            return None;
        }
        out.extend_from_slice(&hay[pos..]);
        Some(out)
    }

    /// Replace matches in every header value (a value that would no longer be
    /// valid is dropped).
    pub fn headers(&self, headers: &mut HeaderMap) {
        // Nearly every response holds no match: look before copying anything.
        if !headers.values().any(|v| self.next_match(v.as_bytes(), 0).is_some()) {
            return;
        }
        let names: Vec<_> = headers.keys().cloned().collect();
        for name in names {
            let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
            if !values.iter().any(|v| self.next_match(v.as_bytes(), 0).is_some()) {
                continue;
            }
            headers.remove(&name);
            for v in values {
                let clean = match self.replace_all(v.as_bytes()) {
                    Some(b) => HeaderValue::from_bytes(&b).ok(),
                    None => Some(v),
                };
                if let Some(c) = clean {
                    headers.append(name.clone(), c);
                }
            }
        }
    }
}

/// The streaming state over one body.
#[derive(Debug)]
pub struct Stream {
    scrubber: Arc<Scrubber>,
    tail: BytesMut,
}

impl Stream {
    /// A fresh stream.
    pub fn new(scrubber: Arc<Scrubber>) -> Stream {
        Stream { scrubber, tail: BytesMut::new() }
    }

    /// Feed one chunk; returns what can be released now (the possible start
    /// of a match stays held back).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let s = &self.scrubber;
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let mut out = BytesMut::with_capacity(buf.len());
        let mut pos = 0;
        while let Some((start, len)) = s.next_match(&buf, pos) {
            out.extend_from_slice(&buf[pos..start]);
            out.extend_from_slice(&s.replacement);
            pos = start + len;
        }
        let release = buf.len().saturating_sub(s.hold).max(pos);
        out.extend_from_slice(&buf[pos..release]);
        self.tail = buf.split_off(release);
        out.freeze()
    }

    /// The end of the body: whatever was held back (too short to hold a match).
    pub fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.tail).freeze()
    }
}

/// `a` followed by `b`, copying only when both hold bytes.
fn join(a: Bytes, b: Bytes) -> Bytes {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a,
        (true, false) => b,
        (false, false) => {
            let mut both = BytesMut::with_capacity(a.len() + b.len());
            both.extend_from_slice(&a);
            both.extend_from_slice(&b);
            both.freeze()
        }
    }
}

/// A response body with every injected value replaced.
pub struct ScrubBody<B> {
    inner: B,
    stream: Stream,
    /// A frame read after the data was flushed (trailers), or the end.
    pending: Option<Option<Frame<Bytes>>>,
}

impl<B> ScrubBody<B> {
    /// Scrub `inner` with `scrubber`.
    pub fn new(inner: B, scrubber: Arc<Scrubber>) -> ScrubBody<B> {
        ScrubBody { inner, stream: Stream::new(scrubber), pending: None }
    }
}

impl<B> Body for ScrubBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if let Some(pending) = this.pending.take() {
            return Poll::Ready(pending.map(Ok));
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.stream.push(&data);
                        if this.inner.is_end_stream() {
                            // The last chunk (a short body is often the only
                            // one): released whole, as one frame.
                            let out = join(out, this.stream.finish());
                            this.pending = Some(None);
                            return Poll::Ready((!out.is_empty()).then(|| Ok(Frame::data(out))));
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        let frame = match frame.into_trailers() {
                            Ok(mut t) => {
                                this.stream.scrubber.headers(&mut t);
                                Frame::trailers(t)
                            }
                            Err(other) => other,
                        };
                        return Poll::Ready(Some(Ok(this.flush_then(Some(frame)))));
                    }
                },
                Poll::Ready(None) => {
                    let rest = this.stream.finish();
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    this.pending = Some(None);
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.as_ref().is_some_and(Option::is_none)
            || (self.inner.is_end_stream() && self.stream.tail.is_empty() && self.pending.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        // Replacements change the length: no exact size.
        let mut h = SizeHint::new();
        h.set_lower(0);
        h
    }
}

impl<B> ScrubBody<B> {
    /// Release held-back bytes before `next` (trailers); `next` waits its turn.
    fn flush_then(&mut self, next: Option<Frame<Bytes>>) -> Frame<Bytes> {
        let rest = self.stream.finish();
        match next {
            Some(frame) if rest.is_empty() => frame,
            next => {
                self.pending = Some(next);
                Frame::data(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub_chunks(patterns: &[&str], chunks: &[&str]) -> String {
        let s = Arc::new(Scrubber::new(patterns.iter().map(|p| p.as_bytes().to_vec()), "PH").unwrap());
        let mut st = Stream::new(s);
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&st.push(c.as_bytes()));
        }
        out.extend_from_slice(&st.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_value_split_across_every_possible_boundary_is_replaced() {
        let body = "{\"url\":\"/x?key=SECRETKEY42&a=1\",\"again\":\"SECRETKEY42\"}";
        for cut in 0..=body.len() {
            for cut2 in cut..=body.len() {
                let out = scrub_chunks(&["SECRETKEY42"], &[&body[..cut], &body[cut..cut2], &body[cut2..]]);
                assert_eq!(out, "{\"url\":\"/x?key=PH&a=1\",\"again\":\"PH\"}", "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn one_byte_chunks_and_several_patterns() {
        let body = "a SECRET b U0VDUkVUOg== c SECRE";
        let chunks: Vec<String> = body.chars().map(String::from).collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        assert_eq!(scrub_chunks(&["SECRET", "U0VDUkVUOg=="], &refs), "a PH b PH c SECRE");
    }

    #[test]
    fn header_values_are_scrubbed_and_others_kept() {
        let s = Scrubber::new([b"k3y".to_vec()], "PH").unwrap();
        let mut h = HeaderMap::new();
        h.append("location", HeaderValue::from_static("https://a/next?key=k3y&page=2"));
        h.append("link", HeaderValue::from_static("<https://a/?key=k3y>; rel=next"));
        h.append("x-other", HeaderValue::from_static("fine"));
        s.headers(&mut h);
        assert_eq!(h["location"], "https://a/next?key=PH&page=2");
        assert_eq!(h["link"], "<https://a/?key=PH>; rel=next");
        assert_eq!(h["x-other"], "fine");
    }
}
