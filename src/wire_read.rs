//! Reading the wire replies the SDK itself uses (sandbox objects, token and timeout replies,
//! process stream events) from parsed JSON, field by field.
//!
//! These types are defined once, in `sandlot_protocol`, with serde; decoding them here
//! through serde-wasm-bindgen cost a visitor and a monomorphised deserializer per type (and
//! serde's error formatting with it), about 5 KB of the gzipped wasm. `wire_reader!` lists a
//! type's fields instead: the compiler checks that every field is named, each key is the
//! field's name (the wire is snake_case, as the field names are), and the tests below check
//! each type against the protocol's own serde output, so a renamed key cannot slip by.

use sandlot_protocol as wire;
use wasm_bindgen::prelude::*;

use crate::args::{read, FieldValue, FromJs};

/// `impl FromJs` for a wire struct: `field` is required (an `Option` field may be absent),
/// `field = default` takes the type's default when absent (serde's `#[serde(default)]`).
macro_rules! wire_reader {
    ($ty:path { $($field:ident $(= $default:ident)?),* $(,)? }) => {
        impl FromJs for $ty {
            fn read_js(value: &JsValue) -> Result<Self, String> {
                if !value.is_object() {
                    return Err("expected an object".into());
                }
                let mut error = None;
                $(let $field = wire_reader!(@read value, $field, error $(, $default)?);)*
                let ($(Some($field),)*) = ($($field,)*) else {
                    return Err(error.unwrap_or_default());
                };
                Ok(Self { $($field),* })
            }
        }
        impl FieldValue for $ty {
            fn from_field(value: JsValue) -> Result<Self, String> {
                <$ty as FromJs>::read_js(&value)
            }
        }
    };
    (@read $value:ident, $field:ident, $error:ident) => {
        read($value, stringify!($field), &[], &mut $error)
    };
    (@read $value:ident, $field:ident, $error:ident, default) => {
        read::<Option<_>>($value, stringify!($field), &[], &mut $error)
            .map(Option::unwrap_or_default)
    };
}

wire_reader!(wire::Sandbox {
    id,
    object = default,
    status,
    public_host,
    direct_url,
    template_id,
    template_name,
    organization_id = default,
    node_id,
    region,
    resources,
    internet_access = default,
    internet_access_available,
    network,
    live_mode = default,
    timeout_seconds,
    expires_at,
    created_at,
    auth_token,
    token_expires_at,
    request_id,
});
wire_reader!(wire::SandboxResources {
    vcpu,
    memory_mb,
    disk_mb
});
wire_reader!(wire::NetworkRules {
    allow_out = default,
    deny_out = default,
});
wire_reader!(wire::ListEnvelope<wire::Sandbox> {
    object = default,
    data = default,
    has_more = default,
    next_cursor,
    url,
    request_id,
});
wire_reader!(wire::TokenReply {
    auth_token,
    token_expires_at,
    request_id,
});
wire_reader!(wire::SetTimeoutReply {
    id,
    timeout_seconds,
    expires_at,
    request_id,
});
wire_reader!(wire::StartEvent {
    process_id,
    execution_id,
    name,
    timeout,
    timestamp,
});
wire_reader!(wire::OutputEvent {
    data,
    seq,
    timestamp,
});
wire_reader!(wire::TruncatedEvent {
    from_seq,
    to_seq,
    dropped_bytes,
    message,
});
wire_reader!(wire::ExitEvent {
    status,
    exit_code,
    execution_time,
    error,
    oom_killed = default,
    timestamp,
    seq,
});

/// The status words, read by the protocol's own `parse`.
macro_rules! wire_words {
    ($($ty:path),*) => {$(
        impl FieldValue for $ty {
            fn from_field(value: JsValue) -> Result<Self, String> {
                value
                    .as_string()
                    .and_then(|s| <$ty>::parse(&s))
                    .ok_or_else(|| "an unknown status".into())
            }
        }
    )*};
}
wire_words!(wire::ProcessStatus, wire::SandboxStatus);

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// `value` written by the protocol's serde and read back here is `value` again.
    fn round_trip<T: FromJs + serde::Serialize + std::fmt::Debug>(value: T) {
        let js = serde_wasm_bindgen::Serializer::json_compatible();
        let js = serde::Serialize::serialize(&value, &js).unwrap();
        // Compared by their Debug text: not every wire type derives PartialEq.
        assert_eq!(
            format!("{:?}", T::read_js(&js).unwrap()),
            format!("{value:?}")
        );
    }

    fn sandbox() -> wire::Sandbox {
        wire::Sandbox {
            id: "sb".into(),
            object: "sandbox".into(),
            status: wire::SandboxStatus::Paused,
            public_host: Some("http://h/agent".into()),
            direct_url: Some("d".into()),
            template_id: Some("1".into()),
            template_name: Some("code-interpreter".into()),
            organization_id: 7,
            node_id: Some("n".into()),
            region: Some("r".into()),
            resources: Some(wire::SandboxResources {
                vcpu: 2,
                memory_mb: 512,
                disk_mb: 1024,
            }),
            internet_access: true,
            internet_access_available: Some(true),
            network: Some(wire::NetworkRules {
                allow_out: vec!["pypi.org".into()],
                deny_out: vec!["0.0.0.0/0".into()],
            }),
            live_mode: true,
            timeout_seconds: Some(60),
            expires_at: Some("e".into()),
            created_at: Some("c".into()),
            auth_token: Some("t".into()),
            token_expires_at: Some("x".into()),
            request_id: Some("q".into()),
        }
    }

    #[wasm_bindgen_test]
    fn every_wire_reply_read_here_round_trips_through_the_protocols_serde() {
        round_trip(sandbox());
        round_trip(wire::ListEnvelope {
            object: "list".into(),
            data: vec![sandbox(), sandbox()],
            has_more: true,
            next_cursor: Some("n".into()),
            url: Some("/v1/sandboxes".into()),
            request_id: Some("q".into()),
        });
        round_trip(wire::TokenReply {
            auth_token: "a".into(),
            token_expires_at: "b".into(),
            request_id: Some("q".into()),
        });
        round_trip(wire::SetTimeoutReply {
            id: "sb".into(),
            timeout_seconds: 30,
            expires_at: "e".into(),
            request_id: Some("q".into()),
        });
        round_trip(wire::StartEvent {
            process_id: "p".into(),
            execution_id: "e".into(),
            name: Some("n".into()),
            timeout: Some(5),
            timestamp: Some("t".into()),
        });
        round_trip(wire::OutputEvent {
            data: "x".into(),
            seq: 3,
            timestamp: Some("t".into()),
        });
        round_trip(wire::TruncatedEvent {
            from_seq: 1,
            to_seq: 2,
            dropped_bytes: 9,
            message: Some("m".into()),
        });
        round_trip(wire::ExitEvent {
            status: wire::ProcessStatus::Killed,
            exit_code: Some(-9),
            execution_time: Some(0.25),
            error: Some("e".into()),
            oom_killed: true,
            timestamp: Some("t".into()),
            seq: 4,
        });
    }

    #[wasm_bindgen_test]
    fn absent_defaults_are_filled_and_missing_required_fields_refused() {
        let minimal = js_sys::JSON::parse(r#"{"id":"sb","status":"running"}"#).unwrap();
        let s = wire::Sandbox::read_js(&minimal).unwrap();
        assert_eq!(
            (s.internet_access, s.organization_id, s.public_host),
            (false, 0, None)
        );
        let e = wire::Sandbox::read_js(&js_sys::JSON::parse(r#"{"id":"sb"}"#).unwrap());
        assert_eq!(e.unwrap_err(), "status: an unknown status");
        let e = wire::OutputEvent::read_js(&js_sys::JSON::parse(r#"{"seq":1.5}"#).unwrap());
        assert_eq!(e.unwrap_err(), "data: expected a string");
    }
}
