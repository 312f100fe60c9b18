//! Every hostcall with hostile arguments: for each `env.proxy_*` and WASI function the host defines, a module calls it
//! from `on_request_headers` with out-of-bounds pointers, huge lengths, -1 and 0 in every argument. Whatever the
//! call, the answer is the trap's policy (503) or a status the module can handle (200): never a host panic, never a
//! hang, and the proxy keeps serving.

use std::time::Duration;

use http::Request;
use meshwork_tests::*;

/// (module, name, parameter types; `l` = i64), result: whether it returns an i32 status.
const HOSTCALLS: &[(&str, &str, &str, bool)] = &[
    ("env", "proxy_log", "iii", true),
    ("env", "proxy_get_log_level", "i", true),
    ("env", "proxy_get_current_time_nanoseconds", "i", true),
    ("env", "proxy_set_tick_period_milliseconds", "i", true),
    ("env", "proxy_get_buffer_bytes", "iiiii", true),
    ("env", "proxy_set_buffer_bytes", "iiiii", true),
    ("env", "proxy_get_buffer_status", "iii", true),
    ("env", "proxy_get_header_map_pairs", "iii", true),
    ("env", "proxy_set_header_map_pairs", "iii", true),
    ("env", "proxy_get_header_map_value", "iiiii", true),
    ("env", "proxy_get_header_map_size", "ii", true),
    ("env", "proxy_add_header_map_value", "iiiii", true),
    ("env", "proxy_replace_header_map_value", "iiiii", true),
    ("env", "proxy_remove_header_map_value", "iii", true),
    ("env", "proxy_get_property", "iiii", true),
    ("env", "proxy_set_property", "iiii", true),
    ("env", "proxy_get_shared_data", "iiiii", true),
    ("env", "proxy_set_shared_data", "iiiii", true),
    ("env", "proxy_register_shared_queue", "iii", true),
    ("env", "proxy_resolve_shared_queue", "iiiii", true),
    ("env", "proxy_dequeue_shared_queue", "iii", true),
    ("env", "proxy_enqueue_shared_queue", "iii", true),
    ("env", "proxy_continue_stream", "i", true),
    ("env", "proxy_close_stream", "i", true),
    ("env", "proxy_send_local_response", "iiiiiiii", true),
    ("env", "proxy_http_call", "iiiiiiiiii", true),
    ("env", "proxy_grpc_call", "iiiiiiiiiiii", true),
    ("env", "proxy_grpc_stream", "iiiiiiiii", true),
    ("env", "proxy_grpc_send", "iiii", true),
    ("env", "proxy_grpc_cancel", "i", true),
    ("env", "proxy_grpc_close", "i", true),
    ("env", "proxy_get_status", "iii", true),
    ("env", "proxy_set_effective_context", "i", true),
    ("env", "proxy_done", "", true),
    ("env", "proxy_call_foreign_function", "iiiiii", true),
    ("env", "proxy_define_metric", "iiii", true),
    ("env", "proxy_get_metric", "ii", true),
    ("env", "proxy_record_metric", "il", true),
    ("env", "proxy_increment_metric", "il", true),
    ("wasi_snapshot_preview1", "environ_sizes_get", "ii", true),
    ("wasi_snapshot_preview1", "environ_get", "ii", true),
    ("wasi_snapshot_preview1", "args_sizes_get", "ii", true),
    ("wasi_snapshot_preview1", "args_get", "ii", true),
    ("wasi_snapshot_preview1", "fd_write", "iiii", true),
    ("wasi_snapshot_preview1", "fd_read", "iiii", true),
    ("wasi_snapshot_preview1", "fd_close", "i", true),
    ("wasi_snapshot_preview1", "fd_seek", "ilii", true),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "ii", true),
    ("wasi_snapshot_preview1", "fd_prestat_get", "ii", true),
    ("wasi_snapshot_preview1", "fd_prestat_dir_name", "iii", true),
    ("wasi_snapshot_preview1", "sched_yield", "", true),
    ("wasi_snapshot_preview1", "poll_oneoff", "iiii", true),
    ("wasi_snapshot_preview1", "clock_time_get", "ili", true),
    ("wasi_snapshot_preview1", "random_get", "ii", true),
    ("wasi_snapshot_preview1", "proc_exit", "i", false),
];

/// Argument values tried in every parameter: past the end of memory, a huge length, -1, 0.
const PATTERNS: &[i64] = &[0xFFFF_FF00, 0x7FFF_FFFF, -1, 0];

/// A proxy-wasm-shaped module (ABI marker, memory, allocator) whose `on_request_headers` calls `name` with `arg` in
/// every parameter and then continues.
fn module(import: &str, name: &str, params: &str, returns: bool, arg: i64) -> Vec<u8> {
    let types: Vec<&str> = params
        .chars()
        .map(|c| if c == 'l' { "i64" } else { "i32" })
        .collect();
    let result = if returns { "(result i32)" } else { "" };
    let args: String = types
        .iter()
        .map(|t| format!("({t}.const {arg}) "))
        .collect();
    let drop = if returns { "drop" } else { "" };
    let wat = format!(
        r#"(module
  (import "{import}" "{name}" (func $f (param {params}) {result}))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $f {args}) {drop}
    (i32.const 0)))"#,
        params = types.join(" "),
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("{name}: {e}\n{wat}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostcall_survives_hostile_arguments() {
    let up = named_upstream("ok").await;
    let dir = std::env::temp_dir().join(format!("meshwork-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut routes = String::new();
    let mut paths = Vec::new();
    for (import, name, params, returns) in HOSTCALLS {
        for (i, arg) in PATTERNS.iter().enumerate() {
            let file = dir.join(format!("{name}-{i}.wasm"));
            std::fs::write(&file, module(import, name, params, *returns, *arg)).unwrap();
            let path = format!("/{name}/{i}");
            routes.push_str(&format!(
                "          - match: {{ path: \"{path}\" }}\n            cluster: app\n            \
                 filters: [{{ name: \"{name}-{i}\", url: \"{}\" }}]\n",
                file.display()
            ));
            paths.push(path);
        }
    }
    routes.push_str(&route("/", "app"));
    let yaml = proxy_yaml(&routes, &cluster("app", &[up], "")).replace("workers: 2", "workers: 1");
    let mut tp = TestProxy::start(&yaml);
    let (mut trapped, mut answered) = (0, 0);
    for path in &paths {
        let req = Request::get(path.as_str())
            .header("host", "svc")
            .body(empty())
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), send(tp.addr, req))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer"));
        let resp = match resp {
            Ok(resp) => resp,
            // `proxy_close_stream(HttpRequest)` is a legitimate reset of the stream.
            Err(e) if path == "/proxy_close_stream/3" && e.is_incomplete_message() => {
                answered += 1;
                continue;
            }
            Err(e) => panic!("{path}: {e}"),
        };
        match resp.status().as_u16() {
            503 => trapped += 1,
            200 => answered += 1,
            other => panic!("{path}: unexpected {other}"),
        }
    }
    assert_eq!(
        get(tp.addr, "/").await,
        (200, "ok".to_string()),
        "still serving"
    );
    // Out-of-bounds pointers must trap wherever memory is touched: most calls with the first pattern trap.
    assert!(
        trapped > paths.len() / 4,
        "{trapped} trapped, {answered} answered"
    );
    tp.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
