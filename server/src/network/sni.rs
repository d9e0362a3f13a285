//! The name a connection states before any data: the server name of a TLS ClientHello, or
//! the `Host` of an HTTP/1 request head. Read from the first bytes only, never decrypted.

/// What the first bytes of a connection say so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    Name(String),
    /// A complete hello or request head without a name (or something else entirely).
    NoName,
    NeedMore,
}

pub fn peek(buf: &[u8]) -> Peek {
    match buf.first() {
        None => Peek::NeedMore,
        Some(0x16) => tls_server_name(buf),
        Some(_) => http_host(buf),
    }
}

/// A cursor over bytes that fails (None) past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }
}

fn tls_server_name(buf: &[u8]) -> Peek {
    if buf.len() < 5 {
        return Peek::NeedMore;
    }
    let record_len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    let Some(record) = buf.get(5..5 + record_len) else {
        return Peek::NeedMore;
    };
    client_hello_name(record).map_or(Peek::NoName, Peek::Name)
}

fn client_hello_name(record: &[u8]) -> Option<String> {
    let mut r = Reader {
        buf: record,
        pos: 0,
    };
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.u24()?;
    let body = r.take(len.min(record.len() - 4))?;
    let mut r = Reader { buf: body, pos: 0 };
    r.take(2 + 32)?; // version, random
    let n = r.u8()?;
    r.take(n)?; // session id
    let n = r.u16()?;
    r.take(n)?; // cipher suites
    let n = r.u8()?;
    r.take(n)?; // compression methods
    let n = r.u16()?;
    let mut exts = Reader {
        buf: r.take(n)?,
        pos: 0,
    };
    while let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) {
        let data = exts.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut names = Reader { buf: data, pos: 0 };
        let list_len = names.u16()?;
        let mut list = Reader {
            buf: names.take(list_len)?,
            pos: 0,
        };
        while let Some(name_type) = list.u8() {
            let len = list.u16()?;
            let name = list.take(len)?;
            if name_type == 0 {
                return std::str::from_utf8(name)
                    .ok()
                    .map(|s| s.to_ascii_lowercase());
            }
        }
    }
    None
}

fn http_host(buf: &[u8]) -> Peek {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Peek::NeedMore;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    head.lines()
        .skip(1)
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim().eq_ignore_ascii_case("host").then(|| {
                let value = value.trim();
                // Strip a port (but not from a bracketed IPv6 literal).
                let host = match value.rsplit_once(':') {
                    Some((h, p)) if !h.ends_with(']') || p.is_empty() => {
                        if p.bytes().all(|b| b.is_ascii_digit()) {
                            h
                        } else {
                            value
                        }
                    }
                    _ => value,
                };
                host.to_ascii_lowercase()
            })
        })
        .map_or(Peek::NoName, Peek::Name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TLS 1.2 ClientHello naming `name`.
    pub fn client_hello(name: &str) -> Vec<u8> {
        let mut sni = vec![0u8];
        sni.extend((name.len() as u16).to_be_bytes());
        sni.extend(name.as_bytes());
        let mut list = (sni.len() as u16).to_be_bytes().to_vec();
        list.extend(sni);
        let mut ext = vec![0, 0];
        ext.extend((list.len() as u16).to_be_bytes());
        ext.extend(list);
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn the_server_name_of_a_client_hello_is_read_even_when_it_arrives_in_pieces() {
        let hello = client_hello("Fake.Test");
        assert_eq!(peek(&hello), Peek::Name("fake.test".into()));
        assert_eq!(peek(&hello[..20]), Peek::NeedMore);
        assert_eq!(peek(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0]), Peek::NoName);
    }

    #[test]
    fn the_host_of_an_http_request_is_read_without_its_port() {
        let req = b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST: Fake.test:8080\r\n\r\n";
        assert_eq!(peek(req), Peek::Name("fake.test".into()));
        assert_eq!(peek(b"GET / HTTP/1.1\r\nHost: a"), Peek::NeedMore);
        assert_eq!(peek(b"GET / HTTP/1.0\r\n\r\n"), Peek::NoName);
    }
}
