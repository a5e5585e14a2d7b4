//! Outbound networking shared by the proxy and the OAuth client: name
//! overrides (`AUTHSOME_RESOLVE`), the user's own egress proxy
//! (`HTTPS_PROXY`/`NO_PROXY` as authsome found them), upstream trust (system
//! roots plus `AUTHSOME_UPSTREAM_CA`), TCP connects with timeouts, and a small
//! HTTPS client that never follows redirects.

pub(crate) mod egress;
pub(crate) mod http;
pub(crate) mod resolve;
pub(crate) mod roots;
pub(crate) mod tls;

pub use resolve::Resolver;
pub use tls::Roots;

use std::time::Duration;
use tokio::net::TcpStream;

/// How long a TCP connect to an upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to `host:port`, honouring `AUTHSOME_RESOLVE` and the user's egress
/// proxy, with `TCP_NODELAY` set.
pub async fn connect(resolver: &Resolver, host: &str, port: u16) -> std::io::Result<TcpStream> {
    let fut = async {
        let stream = match (resolver.lookup(host, port), resolver.egress_for(host, port)) {
            (Some(addr), _) => TcpStream::connect(addr).await?,
            (None, Some(proxy)) => proxy.tunnel(resolver, host, port).await?,
            (None, None) => TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port)).await?,
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connecting to {host}:{port} timed out")))?
}
