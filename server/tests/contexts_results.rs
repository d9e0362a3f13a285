//! Results of runs in contexts against the real server: every rich type (a decoded PNG's
//! header and size, a DataFrame's parsed HTML table, Markdown, JSON, LaTeX, SVG), HopX's
//! `/execute/ipython` and `/jupyter/sessions` served from the same contexts, and results as
//! stream events (SSE and WebSocket).

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Sandbox, Server, SseParser};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};

async fn exec(sb: &Sandbox, body: Value) -> Value {
    let (status, out) = sb.call(Method::POST, "/execute", Some(body)).await;
    assert_eq!(status, 200, "{out}");
    out
}

async fn py(sb: &Sandbox, code: &str) -> Value {
    exec(sb, json!({"code": code, "language": "python"})).await
}

fn png_size(b64: &str) -> (u32, u32) {
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// The cells of an HTML table, row by row (header cells included).
fn table_rows(html: &str) -> Vec<Vec<String>> {
    let body = &html[html.find("<table").expect("a table")..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let row = &row[..row.find("</tr>").unwrap_or(row.len())];
            row.split(['<'])
                .filter_map(|part| {
                    let (tag, text) = part.split_once('>')?;
                    (tag.starts_with("td") || tag.starts_with("th"))
                        .then(|| text.trim().to_string())
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn rich_results_carry_png_svg_html_markdown_json_and_latex() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let chart = py(
        &sb,
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(4, 3), dpi=50)\nplt.plot([1, 3, 2])\nplt.show()",
    )
    .await;
    assert_eq!(chart["exit_code"], 0, "{chart}");
    let (w, h) = png_size(chart["png"].as_str().expect("the flat png field"));
    assert!(
        (100..=400).contains(&w) && (80..=300).contains(&h),
        "{w}x{h}"
    );
    assert_eq!(chart["results"][0]["png"], chart["png"]);
    assert_eq!(chart["results"][0]["is_main_result"], false);

    // plt.show() emits the figure where it is called: before what the cell shows after it.
    let ordered = py(
        &sb,
        "from IPython.display import display, Markdown\n\
         plt.plot([1, 2])\n\
         plt.show()\n\
         display(Markdown('after'))\n\
         plt.plot([2, 1])\n\
         'last'",
    )
    .await;
    let kinds: Vec<&str> = ordered["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            if r["png"].is_string() {
                "png"
            } else if r["markdown"].is_string() {
                "markdown"
            } else {
                "text"
            }
        })
        .collect();
    // The figure left open at the end comes after the cell's own results.
    assert_eq!(kinds, ["png", "markdown", "text", "png"], "{ordered}");

    let svg = py(
        &sb,
        "from matplotlib_inline.backend_inline import InlineBackend\n\
         InlineBackend.instance().figure_formats = {'svg'}\n\
         plt.plot([1, 2])",
    )
    .await;
    assert!(svg["svg"].as_str().unwrap_or("").contains("<svg"), "{svg}");

    let frame = py(
        &sb,
        "import pandas as pd\ndf = pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [3, 19]})\ndf",
    )
    .await;
    let rows = table_rows(frame["html"].as_str().expect("html"));
    assert_eq!(rows[0][1..], ["city", "temp"], "{rows:?}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.contains(&"Lima".to_string()))
            .count(),
        1,
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.ends_with(&["Oslo".to_string(), "3".to_string()])),
        "{rows:?}"
    );
    assert!(
        frame["result"].as_str().unwrap().contains("Oslo"),
        "the text form too"
    );
    assert_eq!(frame["results"][0]["is_main_result"], true);

    let shown = py(
        &sb,
        "from IPython.display import display, Markdown, JSON, Latex, HTML\n\
         display(Markdown('# Title'), JSON({'k': [1, 2]}), Latex(r'$x^2$'), HTML('<b>b</b>'))",
    )
    .await;
    assert_eq!(shown["markdown"], "# Title", "{shown}");
    assert_eq!(shown["json"], json!({"k": [1.0, 2.0]}));
    assert_eq!(shown["html"], "<b>b</b>");
    assert_eq!(shown["results"][2]["latex"], "$x^2$");
    assert_eq!(shown["results"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn execute_ipython_and_jupyter_sessions_use_the_same_contexts() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let (status, out) = sb
        .call(
            Method::POST,
            "/execute/ipython",
            Some(json!({"code": "shared = 3\nshared * 2"})),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["result"], "6");
    assert_eq!(
        py(&sb, "shared").await["result"],
        "3",
        "the same interpreter"
    );
    let (status, _) = sb
        .call(
            Method::POST,
            "/execute/ipython",
            Some(json!({"code": "ls", "language": "bash"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, sessions) = sb.call(Method::GET, "/jupyter/sessions", None).await;
    assert_eq!(status, 200);
    let session = &sessions["sessions"][0];
    assert_eq!(session["kernel_id"], "default-python", "{sessions}");
    assert_eq!(session["execution_state"], "idle");
}

#[tokio::test]
async fn streams_emit_results_as_events_and_a_killed_cell_keeps_the_state() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let resp = sb
        .http
        .post(format!("{}/execute/stream", sb.agent))
        .header("Authorization", format!("Bearer {}", sb.token))
        .json(&json!({"code": "print('a')\nfrom IPython.display import display, HTML\ndisplay(HTML('<i>x</i>'))\n40 + 2"}))
        .send()
        .await
        .unwrap();
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.expect("stream reads") {
        events.extend(parser.push(&chunk));
        if events.iter().any(|e| e.event == "exit") {
            break;
        }
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "result")
        .map(|e| &e.data)
        .collect();
    assert_eq!(results.len(), 2, "{kinds:?}");
    assert_eq!(results[0]["html"], "<i>x</i>");
    assert_eq!(results[1]["text"], "42");
    assert_eq!(results[1]["is_main_result"], true);
    assert_eq!(kinds.last(), Some(&"exit"));

    // A long cell streamed over the WebSocket, killed through its process id.
    use tokio_tungstenite::tungstenite::Message;
    py(&sb, "state = 'kept'").await;
    let mut ws = sb.ws_connect().await;
    ws.send(Message::Text(
        json!({"type": "execute", "code": "print('go', flush=True)\nimport time\ntime.sleep(30)"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("go"), "{first:?}");
    drop(ws); // leaving the stream stops the cell
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = py(&sb, "state").await;
    assert_eq!(after["result"], "'kept'", "{after}");
}
