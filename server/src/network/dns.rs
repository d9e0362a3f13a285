//! The sandboxes' resolver. Each sandbox with internet access has `nameserver <its
//! gateway>` in its `/etc/resolv.conf`; nftables redirects its port-53 datagrams here. A
//! question from an address that is no sandbox's is ignored; a name the sandbox's rules do
//! not allow is answered NXDOMAIN at once (so tools fail fast with "name not known"); any
//! other question is forwarded to the upstream (`--network-dns-upstream`, by default the
//! host's resolver) and the answer relayed unchanged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::serialize::binary::BinEncodable;
use tokio::net::UdpSocket;

use super::Active;
use crate::shutdown::Shutdown;

/// How long an upstream answer is waited for (the sandbox's resolver retries on its own).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Questions in flight to the upstream at once; more are dropped (the client retries).
const MAX_IN_FLIGHT: usize = 256;

pub(super) async fn serve(
    socket: UdpSocket,
    active: Arc<Active>,
    upstream: SocketAddr,
    shutdown: Shutdown,
) {
    let socket = Arc::new(socket);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(_) => continue,
            },
            _ = shutdown.requested() => return,
        };
        let IpAddr::V4(ip) = from.ip() else { continue };
        let Some(sandbox) = active.lookup(ip) else {
            continue;
        };
        let Ok(question) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let name = question
            .queries()
            .first()
            .map(|q| q.name().to_ascii())
            .unwrap_or_default();
        if !sandbox.rules().resolves(&name) {
            if let Some(refusal) = nxdomain(&question) {
                let _ = socket.send_to(&refusal, from).await;
            }
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let (socket, query) = (socket.clone(), buf[..n].to_vec());
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(answer) = forward(&query, upstream).await {
                let _ = socket.send_to(&answer, from).await;
            }
        });
    }
}

/// An NXDOMAIN answer to `question` (same id and question).
fn nxdomain(question: &Message) -> Option<Vec<u8>> {
    let mut answer = Message::new();
    answer
        .set_id(question.id())
        .set_message_type(MessageType::Response)
        .set_op_code(question.op_code())
        .set_recursion_desired(question.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(ResponseCode::NXDomain)
        .add_queries(question.queries().to_vec());
    answer.to_bytes().ok()
}

async fn forward(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    // Only the answer to this question (a connected socket hears only the upstream).
    (n >= 2 && buf[..2] == query[..2]).then(|| buf[..n].to_vec())
}
