//! The network tests' "fake internet": a network namespace with a host at 203.0.113.10
//! (TEST-NET-3) serving DNS, HTTP, HTTPS with a self-signed certificate and a tiny package
//! index (`fixtures/fake_internet.py`), shared by the tests that run at once.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};

use super::unique_temp_dir;

pub const FAKE_HOST: &str = "203.0.113.10";
pub const FAKE_HOST_SIDE: &str = "203.0.113.1";

/// The fake internet, shared by the tests that run at once and torn down by the last one
/// (also when a test fails: teardown is a `Drop`).
pub struct FakeInternet {
    pub netns: String,
    pub host_if: String,
    pub dir: std::path::PathBuf,
    server: Mutex<Option<Child>>,
}

static FAKE: Mutex<Weak<FakeInternet>> = Mutex::new(Weak::new());

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl FakeInternet {
    pub fn get() -> Arc<FakeInternet> {
        let mut slot = FAKE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fake) = slot.upgrade() {
            return fake;
        }
        let fake = Arc::new(Self::build());
        *slot = Arc::downgrade(&fake);
        fake
    }

    fn build() -> FakeInternet {
        let tag = format!("{:05x}", std::process::id() & 0xfffff);
        let fake = FakeInternet {
            netns: format!("sltest-fake-{tag}"),
            host_if: format!("slfk{tag}"),
            dir: unique_temp_dir("sandlot-fake-internet"),
            server: Mutex::new(None),
        };
        // From here on, a failure still tears down what was made (Drop).
        let (ns, hif) = (&fake.netns, &fake.host_if);
        sh(&format!(
            "ip netns add {ns} && ip link add {hif} type veth peer name eth0 netns {ns} && \
             ip addr add {FAKE_HOST_SIDE}/24 dev {hif} && ip link set {hif} up && \
             ip -n {ns} addr add {FAKE_HOST}/24 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up && ip -n {ns} route add default via {FAKE_HOST_SIDE}"
        ));
        let web = fake.dir.join("web");
        std::fs::create_dir_all(web.join("simple/tinypkg")).unwrap();
        std::fs::write(web.join("hello.txt"), "hello from the fake internet\n").unwrap();
        build_wheel(&web.join("simple/tinypkg/tinypkg-0.1-py3-none-any.whl"));
        let (cert, key) = (fake.dir.join("cert.pem"), fake.dir.join("key.pem"));
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=fake.test \
             -addext subjectAltName=DNS:fake.test,DNS:other.test,DNS:blocked.test \
             -keyout {} -out {} 2>/dev/null",
            key.display(),
            cert.display()
        ));
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fake_internet.py"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/python3", script, FAKE_HOST])
            .arg(&web)
            .arg(&cert)
            .arg(&key)
            .args([
                "fake.test=203.0.113.10",
                "other.test=203.0.113.10",
                "blocked.test=203.0.113.10",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        *fake.server.lock().unwrap() = Some(child);
        assert_eq!(line.trim(), "ready", "the fake internet did not start");
        fake
    }
}

impl Drop for FakeInternet {
    fn drop(&mut self) {
        // Serialised with `get`: a new fake internet is built only once this one is gone.
        let _slot = FAKE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = self.server.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-module wheel (`tinypkg`, `VALUE = 42`), written with Python's zipfile.
fn build_wheel(path: &std::path::Path) {
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "tinypkg/__init__.py": "VALUE = 42\n",
    "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
    "tinypkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record += f"{name},sha256={digest},{len(text.encode())}\n"
record += "tinypkg-0.1.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
    z.writestr("tinypkg-0.1.dist-info/RECORD", record)
"#;
    let status = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "build the test wheel");
}
