//! The transparent proxy for ports 80 and 443 of sandboxes whose rules name domains.
//! nftables redirects such connections here; the proxy reads the original destination
//! (`SO_ORIGINAL_DST`) and the name the client states (TLS SNI or HTTP Host, [`super::sni`]),
//! judges the pair by the sandbox's rules, and then either splices the connection to the
//! original destination or resets it. A connection to an allowed address that names a
//! forbidden host is refused; TLS is never terminated.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use super::rules::Verdict;
use super::sni::{peek, Peek};
use super::{nft, Active};
use crate::shutdown::Shutdown;

/// How long a client has to state its name.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read while looking for it.
const HELLO_MAX: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Proxied connections open at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 4096;

pub(super) async fn serve(listener: TcpListener, active: Arc<Active>, shutdown: Shutdown) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(_) => continue,
            },
            _ = shutdown.requested() => return,
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (active, shutdown) = (active.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = handle(stream, peer, &active) => {}
                _ = shutdown.requested() => {}
            }
        });
    }
}

async fn handle(mut client: TcpStream, peer: SocketAddr, active: &Active) {
    let IpAddr::V4(source) = peer.ip() else {
        return;
    };
    let Some(sandbox) = active.lookup(source) else {
        return;
    };
    let Some(target) = original_destination(&client) else {
        return;
    };
    let mut head = Vec::with_capacity(2048);
    let name = tokio::time::timeout(HELLO_TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match peek(&head) {
                Peek::Name(n) => return Some(n),
                Peek::NoName => return None,
                Peek::NeedMore if head.len() >= HELLO_MAX => return None,
                Peek::NeedMore => {}
            }
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or(None);
    let ip = *target.ip();
    let verdict = if nft::refused_address(&active.spec, ip) {
        Verdict::Deny
    } else {
        sandbox.rules().connection(name.as_deref(), ip)
    };
    debug!(%source, %target, name = ?name, ?verdict, "egress proxy");
    if verdict == Verdict::Deny {
        reset(client);
        return;
    }
    let Ok(Ok(mut upstream)) =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(SocketAddr::V4(target))).await
    else {
        reset(client);
        return;
    };
    if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Closes with a RST, so the client sees "connection reset" at once.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

/// Where the client meant to connect before nftables redirected it.
fn original_destination(stream: &TcpStream) -> Option<SocketAddrV4> {
    // SAFETY: getsockopt fills a sockaddr_in of the size we pass.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let ret = libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            &mut addr as *mut _ as *mut libc::c_void,
            &mut len,
        );
        (ret == 0).then(|| {
            SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                u16::from_be(addr.sin_port),
            )
        })
    }
}
