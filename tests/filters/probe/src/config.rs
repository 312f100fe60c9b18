//! Plugin configuration of the probe: one JSON object whose optional keys each
//! switch on one behaviour. An absent or empty configuration is all defaults,
//! which makes the probe a pass-through filter.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Header (or trailer) names to values, applied in name order.
pub type Pairs = BTreeMap<String, String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub tag: String,
    pub add_request_headers: Pairs,
    pub set_request_headers: Pairs,
    pub remove_request_headers: Vec<String>,
    pub add_response_headers: Pairs,
    pub set_response_headers: Pairs,
    pub remove_response_headers: Vec<String>,
    pub add_response_trailers: Pairs,
    pub copy_request_headers_to_response: bool,
    pub deny: Option<Deny>,
    pub local_response: Option<LocalResponse>,
    pub callout: Option<Callout>,
    pub grpc_callout: Option<GrpcCallout>,
    pub grpc_stream: Option<GrpcStream>,
    pub rewrite_request_body: Option<Rewrite>,
    pub rewrite_response_body: Option<Rewrite>,
    pub count_body_chunks: bool,
    pub properties: Vec<Property>,
    /// Read in on_http_response_headers instead (upstream.*, response.*).
    pub response_properties: Vec<Property>,
    pub shared_counter: Option<String>,
    pub tick_ms: u64,
    pub queue: Option<String>,
    pub metrics: bool,
    pub log: Option<String>,
    pub log_on_log: bool,
    pub env: Vec<String>,
    pub foreign: Option<Foreign>,
    /// Declared to the host with `meshwork.callbacks` in on_configure (a refusal rejects the configuration).
    pub callbacks: Option<String>,
    pub fail_in: Option<Callback>,
    pub fail_how: FailHow,
    pub bad_call: BadCall,
}

impl Config {
    /// Parses a configuration buffer; absent, empty or all-whitespace input is
    /// the default configuration.
    pub fn parse(bytes: Option<&[u8]>) -> Result<Config, serde_json::Error> {
        match bytes {
            Some(b) if !b.iter().all(u8::is_ascii_whitespace) => serde_json::from_slice(b),
            _ => Ok(Config::default()),
        }
    }
}

/// Answer locally when the request carries `header`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deny {
    pub header: String,
    #[serde(default = "default_deny_status")]
    pub status: u32,
    #[serde(default)]
    pub body: String,
}

/// Answer every request locally.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalResponse {
    #[serde(default = "default_ok_status")]
    pub status: u32,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: Pairs,
}

/// An HTTP callout made before the request may continue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callout {
    pub cluster: String,
    pub path: String,
    #[serde(default = "default_authority")]
    pub authority: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_deny_status")]
    pub deny_status: u32,
}

/// A unary gRPC callout made before the request may continue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcCallout {
    pub cluster: String,
    pub service: String,
    pub method: String,
    #[serde(default)]
    pub message: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// A gRPC stream opened on request headers: the messages (hex) are sent, the plugin's side is closed with the
/// last one, and the request resumes when the stream closes with status 0.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcStream {
    pub cluster: String,
    pub service: String,
    pub method: String,
    #[serde(default)]
    pub messages: Vec<String>,
}

/// Replace every occurrence of `from` by `to` in a buffered body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub from: String,
    pub to: String,
}

/// A host property to read and echo back as a response header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Property {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: PropertyType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    String,
    Int,
    Uint,
    Bool,
    Bytes,
    Map,
}

/// A foreign function to call on every request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Foreign {
    pub name: String,
    #[serde(default)]
    pub args: String,
}

/// The callbacks that `fail_in` can name (serialized as `on_<snake_case>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Callback {
    #[serde(rename = "on_vm_start")]
    VmStart,
    #[serde(rename = "on_configure")]
    Configure,
    #[serde(rename = "on_context_create")]
    ContextCreate,
    #[serde(rename = "on_request_headers")]
    RequestHeaders,
    #[serde(rename = "on_request_body")]
    RequestBody,
    #[serde(rename = "on_response_headers")]
    ResponseHeaders,
    #[serde(rename = "on_response_body")]
    ResponseBody,
    #[serde(rename = "on_log")]
    Log,
    #[serde(rename = "on_tick")]
    Tick,
    #[serde(rename = "on_http_call_response")]
    HttpCallResponse,
    #[serde(rename = "on_queue_ready")]
    QueueReady,
}

impl Callback {
    pub fn name(self) -> &'static str {
        match self {
            Callback::VmStart => "on_vm_start",
            Callback::Configure => "on_configure",
            Callback::ContextCreate => "on_context_create",
            Callback::RequestHeaders => "on_request_headers",
            Callback::RequestBody => "on_request_body",
            Callback::ResponseHeaders => "on_response_headers",
            Callback::ResponseBody => "on_response_body",
            Callback::Log => "on_log",
            Callback::Tick => "on_tick",
            Callback::HttpCallResponse => "on_http_call_response",
            Callback::QueueReady => "on_queue_ready",
        }
    }
}

/// How the probe misbehaves in the callback named by `fail_in`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailHow {
    #[default]
    Trap,
    Loop,
    Memory,
    BadPointer,
    HugeLength,
    Reject,
}

/// Which raw hostcall `bad_pointer` / `huge_length` abuse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadCall {
    ProxyLog,
    ProxyGetHeaderMapValue,
    ProxyAddHeaderMapValue,
    ProxySetHeaderMapPairs,
    ProxyGetBufferBytes,
    ProxySetBufferBytes,
    ProxyGetProperty,
    ProxySetSharedData,
    ProxySendLocalResponse,
    ProxyHttpCall,
    ProxyCallForeignFunction,
    #[default]
    All,
}

impl BadCall {
    /// Every single hostcall, in the order `all` runs them.
    pub const EACH: [BadCall; 11] = [
        BadCall::ProxyLog,
        BadCall::ProxyGetHeaderMapValue,
        BadCall::ProxyAddHeaderMapValue,
        BadCall::ProxySetHeaderMapPairs,
        BadCall::ProxyGetBufferBytes,
        BadCall::ProxySetBufferBytes,
        BadCall::ProxyGetProperty,
        BadCall::ProxySetSharedData,
        BadCall::ProxySendLocalResponse,
        BadCall::ProxyHttpCall,
        BadCall::ProxyCallForeignFunction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BadCall::ProxyLog => "proxy_log",
            BadCall::ProxyGetHeaderMapValue => "proxy_get_header_map_value",
            BadCall::ProxyAddHeaderMapValue => "proxy_add_header_map_value",
            BadCall::ProxySetHeaderMapPairs => "proxy_set_header_map_pairs",
            BadCall::ProxyGetBufferBytes => "proxy_get_buffer_bytes",
            BadCall::ProxySetBufferBytes => "proxy_set_buffer_bytes",
            BadCall::ProxyGetProperty => "proxy_get_property",
            BadCall::ProxySetSharedData => "proxy_set_shared_data",
            BadCall::ProxySendLocalResponse => "proxy_send_local_response",
            BadCall::ProxyHttpCall => "proxy_http_call",
            BadCall::ProxyCallForeignFunction => "proxy_call_foreign_function",
            BadCall::All => "all",
        }
    }
}

fn default_deny_status() -> u32 {
    403
}

fn default_ok_status() -> u32 {
    200
}

fn default_authority() -> String {
    "callout".to_owned()
}

fn default_timeout_ms() -> u64 {
    1000
}
