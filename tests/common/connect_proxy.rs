//! A loopback HTTP `CONNECT` proxy standing in for a corporate egress proxy:
//! it demands Basic credentials (407 otherwise), records every CONNECT, and
//! sends every tunnel to one address (the echo upstream), whatever host was
//! asked for, as a real egress proxy would after its own DNS lookup.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One CONNECT as received.
#[derive(Debug, Clone)]
pub struct Connect {
    /// The requested authority (`host:port`).
    pub authority: String,
    /// Whether the right credentials came with it.
    pub authorized: bool,
}

/// The running proxy.
pub struct ConnectProxy {
    /// Its loopback port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Connect>>>,
}

impl ConnectProxy {
    /// Listen on 127.0.0.1, requiring `user`/`password`, tunnelling to `target`.
    pub fn start(target: SocketAddr, user: &str, password: &str) -> ConnectProxy {
        use base64::Engine as _;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (log, expected) = (log.clone(), expected.clone());
                std::thread::spawn(move || serve(client, target, &expected, &log));
            }
        });
        ConnectProxy { port, seen }
    }

    /// `http://user:password@127.0.0.1:PORT`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// Every CONNECT received so far.
    pub fn connects(&self) -> Vec<Connect> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut client: TcpStream, target: SocketAddr, expected: &str, log: &Mutex<Vec<Connect>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let request = lines.next().unwrap_or_default().to_owned();
    let authority = request.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let authorized =
        lines.any(|l| l.split_once(':').is_some_and(|(k, v)| k.eq_ignore_ascii_case("proxy-authorization") && v.trim() == expected));
    log.lock().unwrap().push(Connect { authority, authorized });
    if !request.starts_with("CONNECT ") {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    if !authorized {
        let _ = client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n",
        );
        return;
    }
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (mut client, mut upstream) = (client, upstream);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}
