//! A probe component for the host's tests: each path exercises one import and answers with
//! what it saw, as plain text.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store as wasi_kv};

fn bucket() -> anyhow::Result<wasi_kv::Bucket> {
    wasi_kv::open("default").map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn text(v: Option<Vec<u8>>) -> String {
    v.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_else(|| "-".into())
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let info = req.header("spin-path-info").and_then(|h| h.as_str()).unwrap_or("").to_owned();
    let body = match info.as_str() {
        "/headers" => req
            .headers()
            .filter(|(k, _)| k.starts_with("spin-"))
            .map(|(k, v)| format!("{k}={}\n", v.as_str().unwrap_or("?")))
            .collect(),
        "/open" => {
            let other = Store::open("other").err().map(|e| format!("{e:?}"));
            let ghost = Store::open("ghost").err().map(|e| format!("{e:?}"));
            format!("other={other:?} ghost={ghost:?}")
        }
        "/set" => {
            let (key, value) = req.query().split_once('=').unwrap_or(("k", "v"));
            Store::open_default()?.set(key, value.as_bytes())?;
            "ok".into()
        }
        "/get" => match Store::open_default()?.get(req.query()) {
            Ok(v) => text(v),
            Err(e) => format!("error {e:?}"),
        },
        "/keys" => Store::open_default()?.get_keys()?.join(","),
        "/increment" => {
            let b = bucket()?;
            match atomics::increment(&b, req.query(), 1) {
                Ok(n) => n.to_string(),
                Err(e) => format!("error {e:?}"),
            }
        }
        "/many" => {
            let keys: Vec<String> = req.query().split(',').map(str::to_owned).collect();
            let found = batch::get_many(&bucket()?, &keys).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            found.into_iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(",")
        }
        "/cas" => {
            // current(), then another write, then swap: must fail and hand back a fresh CAS.
            let b = bucket()?;
            let err = |e| anyhow::anyhow!("{e:?}");
            b.set("cas", b"one").map_err(err)?;
            let cas = atomics::Cas::new(&b, "cas").map_err(err)?;
            cas.current().map_err(err)?;
            b.set("cas", b"two").map_err(err)?;
            match atomics::swap(cas, b"three") {
                Err(atomics::CasError::CasFailed(fresh)) => {
                    let seen = text(fresh.current().map_err(err)?);
                    let again = atomics::swap(fresh, b"three").is_ok();
                    format!("cas-failed seen={seen} retry={again} now={}", text(b.get("cas").map_err(err)?))
                }
                other => format!("unexpected {other:?}"),
            }
        }
        "/cas-absent" => {
            // current() sees nothing; a write lands before swap; swap still wins (Spin's upsert).
            let b = bucket()?;
            let err = |e| anyhow::anyhow!("{e:?}");
            let cas = atomics::Cas::new(&b, "fresh").map_err(err)?;
            let seen = text(cas.current().map_err(err)?);
            b.set("fresh", b"theirs").map_err(err)?;
            let ok = atomics::swap(cas, b"mine").is_ok();
            format!("seen={seen} swapped={ok} now={}", text(b.get("fresh").map_err(err)?))
        }
        "/var" => {
            let show = |r: Result<String, spin_sdk::variables::Error>| match r {
                Ok(v) => v,
                Err(e) => format!("{e:?}"),
            };
            format!(
                "{}|{}|{}",
                show(spin_sdk::variables::get("greeting")),
                show(spin_sdk::variables::get("nope")),
                show(spin_sdk::variables::get("Bad-Name"))
            )
        }
        "/time" => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs().to_string(),
        "/loop" => {
            // Spins until the host's deadline traps it.
            while !std::hint::black_box(false) {}
            "unreachable".into()
        }
        "/grow" => {
            // Allocates and touches the query's number of MiB.
            let mebibytes: usize = req.query().parse()?;
            let mut v: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mebibytes {
                v.push(vec![1; 1 << 20]);
            }
            v.len().to_string()
        }
        other => format!("path={} info={other}", req.path()),
    };
    Ok(Response::builder().status(200).header("content-type", "text/plain").body(body).build())
}
