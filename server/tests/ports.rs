//! The port proxy against the real server: a sandbox's ports reached through sandlotd with
//! its token, the API key or a signed preview URL (path and host forms), HTTP and WebSocket.
//! No packet leaves the machine: the proxy connects inside the sandbox's own namespace.

mod common;

use std::time::{Duration, Instant};

use common::network::{create, server};
use common::send;
use reqwest::Method;
use serde_json::json;

const WS_ECHO: &str = r#"
import base64, hashlib, socket, struct, threading
def serve(c):
    head = b""
    while b"\r\n\r\n" not in head: head += c.recv(1024)
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while True:
        b1, b2 = c.recv(2)
        n = b2 & 127
        if n == 126: n = struct.unpack(">H", c.recv(2))[0]
        mask = c.recv(4); data = b""
        while len(data) < n: data += c.recv(n - len(data))
        data = bytes(x ^ mask[i % 4] for i, x in enumerate(data))
        if b1 & 15 == 8: return
        c.sendall(bytes([0x81, len(data)]) + data)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9000)); s.listen()
while True: threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"#;

#[tokio::test]
async fn sandbox_ports_are_reached_through_sandlotd_with_a_token_or_a_signed_preview_url() {
    let s = server(&["--preview-domain", "preview.localhost"]).await;
    // No internet: inbound goes only through sandlotd anyway.
    let (sb, _) = create(&s, json!({})).await;
    let (other, _) = create(&s, json!({})).await;
    sb.background(
        json!({"code": "cd /workspace && echo served > page.txt && python3 -m http.server 8000",
                         "language": "bash"}),
    )
    .await;
    sb.background(json!({"code": WS_ECHO, "language": "python"}))
        .await;
    let port_url = format!("{}/sandboxes/{}/ports/8000", s.url, sb.id);
    let get = |url: String, token: Option<String>| {
        let mut rb = s.http.get(url);
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        rb.send()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get(format!("{port_url}/page.txt"), Some(sb.token.clone()))
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(r.text().await.unwrap(), "served\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox's server never answered: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No credentials, another sandbox's token: refused.
    assert_eq!(
        get(format!("{port_url}/page.txt"), None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get(format!("{port_url}/page.txt"), Some(other.token.clone()))
            .await
            .unwrap()
            .status(),
        401
    );
    // A signed preview URL opens it, and leaves a cookie for the page's own requests.
    let (status, preview) = s
        .cp(
            Method::POST,
            &format!("/v1/sandboxes/{}/preview", sb.id),
            Some(json!({"port": 8000, "ttl_seconds": 60})),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let url = preview["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://8000-{}.preview.localhost:", sb.id)),
        "{url}"
    );
    let path_url = format!(
        "{port_url}/page.txt?preview_token={}",
        url.split("preview_token=").nth(1).unwrap()
    );
    let r = get(path_url.clone(), None).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(r.text().await.unwrap(), "served\n");
    let r = s
        .http
        .get(format!("{port_url}/page.txt"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the cookie opens the port");
    // The preview host routes by name.
    let r = s
        .http
        .get(format!("{}/page.txt", s.url))
        .header("Host", format!("8000-{}.preview.localhost", sb.id))
        .header("Authorization", format!("Bearer {}", sb.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "served\n");
    // A preview of another port, and an expired one, are refused.
    let wrong_port = path_url.replace("/ports/8000/", "/ports/8001/");
    assert_eq!(get(wrong_port, None).await.unwrap().status(), 401);
    let (_, short) = sb
        .call(
            Method::POST,
            "/preview",
            Some(json!({"port": 8000, "ttl_seconds": 1})),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = format!(
        "{port_url}/?preview_token={}",
        short["url"]
            .as_str()
            .unwrap()
            .split("preview_token=")
            .nth(1)
            .unwrap()
    );
    let (status, body) = send(s.http.get(expired)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "TOKEN_EXPIRED");
    // Nothing on a port: a clear 502.
    let (status, body) = send(
        s.http
            .get(format!("{}/sandboxes/{}/ports/7999/", s.url, sb.id))
            .header("Authorization", format!("Bearer {}", sb.token)),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "PORT_NOT_REACHABLE");

    // A WebSocket through the port proxy.
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let ws_url = format!(
        "{}/sandboxes/{}/ports/9000/",
        s.url.replacen("http://", "ws://", 1),
        sb.id
    );
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", sb.token).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade through the proxy");
    ws.send(Message::Text("ping through sandlotd".into()))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        echoed.into_text().unwrap().as_str(),
        "ping through sandlotd"
    );
}
