use std::time::Instant;
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (base, key, n, bursts) = (
        a[1].clone(),
        a[2].clone(),
        a[3].parse::<usize>().unwrap(),
        a[4].parse::<usize>().unwrap(),
    );
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1000)
        .build()
        .unwrap();
    for _ in 0..bursts {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (c, base, key) = (client.clone(), base.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let s: serde_json::Value = c
                    .post(format!("{base}/v1/sandboxes"))
                    .header("X-API-Key", &key)
                    .json(&serde_json::json!({"template_name":"code-interpreter"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let host = s["public_host"].as_str().unwrap().to_string();
                let tok = s["auth_token"].as_str().unwrap().to_string();
                let r: serde_json::Value = c
                    .post(format!("{host}/execute"))
                    .bearer_auth(&tok)
                    .json(&serde_json::json!({"code":"print(1)","language":"python","timeout":120}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(r["stdout"], "1\n");
                (
                    t0.elapsed().as_secs_f64() * 1000.0,
                    s["id"].as_str().unwrap().to_string(),
                )
            }));
        }
        let mut ms = Vec::new();
        let mut ids = Vec::new();
        for t in tasks {
            let (m, id) = t.await.unwrap();
            ms.push(m);
            ids.push(id);
        }
        let wall = t0.elapsed().as_secs_f64() * 1000.0;
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("median {:.0} wall {:.0}", ms[ms.len() / 2], wall);
        let mut dels = Vec::new();
        for id in ids {
            let (c, base, key) = (client.clone(), base.clone(), key.clone());
            dels.push(tokio::spawn(async move {
                let _ = c
                    .delete(format!("{base}/v1/sandboxes/{id}"))
                    .header("X-API-Key", &key)
                    .send()
                    .await;
            }));
        }
        for d in dels {
            d.await.unwrap();
        }
    }
}
