//! A filter written with meshwork-sdk, for the SDK's tests: typed config, Result accessors, properties and a host
//! extension that may be missing.

use meshwork_sdk::{config, ext, http, proxy_wasm};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Requests with this header are denied.
    deny_header: String,
    /// The status they get.
    #[serde(default = "forbidden")]
    status: u32,
    /// Hold every request this long (`meshwork.delay`).
    #[serde(default)]
    delay_ms: Option<u32>,
    /// Send requests to this cluster (`meshwork.set_upstream`).
    #[serde(default)]
    upstream: Option<String>,
    /// Upstream timeout for the request (`meshwork.set_timeout`).
    #[serde(default)]
    timeout_ms: Option<u32>,
    /// Eject an endpoint that answers 5xx for this long (`meshwork.eject`); responses then carry
    /// `x-sdk-ejections` (the answer of `meshwork.ejections`, lines joined by `;`).
    #[serde(default)]
    eject_on_5xx_ms: Option<u32>,
}

fn forbidden() -> u32 {
    403
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { cfg: None }) });
}}

struct Root {
    cfg: Option<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.cfg = config::load();
        self.cfg.is_some()
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Demo {
            cfg: self.cfg.clone()?,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Demo {
    cfg: Config,
}

impl Context for Demo {}

impl HttpContext for Demo {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        match self.decide() {
            Ok(action) => action,
            Err(e) => {
                self.send_http_response(500, vec![], Some(e.to_string().as_bytes()));
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if let Some(ms) = self.cfg.eject_on_5xx_ms
            && let Err(e) = self.eject_failed(ms)
        {
            let _ = http::response().set("x-sdk-error", &e.to_string());
        }
        Action::Continue
    }
}

impl Demo {
    fn eject_failed(&self, ms: u32) -> Result<(), Box<dyn std::error::Error>> {
        let status: u32 = http::response()
            .get(":status")?
            .unwrap_or_default()
            .parse()?;
        let cluster = http::property_str("cluster_name")?.unwrap_or_default();
        if status >= 500 {
            let endpoint = http::property_str("upstream.address")?.unwrap_or_default();
            ext::call(
                "meshwork.eject",
                format!("{cluster} {endpoint} {ms}").as_bytes(),
            )?;
        }
        let list = ext::call("meshwork.ejections", cluster.as_bytes())?;
        let list = String::from_utf8_lossy(&list).trim().replace('\n', ";");
        http::response().set("x-sdk-ejections", &list)?;
        Ok(())
    }

    fn decide(&self) -> Result<Action, Box<dyn std::error::Error>> {
        if http::request().get(&self.cfg.deny_header)?.is_some() {
            self.send_http_response(self.cfg.status, vec![("x-denied-by", "sdk-demo")], None);
            return Ok(Action::Pause);
        }
        let plugin = http::property_str("plugin_name")?.unwrap_or_default();
        http::request().set("x-sdk-plugin", &plugin)?;
        let mtls = http::property_bool("connection.mtls")?;
        http::request().set("x-sdk-mtls", &format!("{mtls:?}"))?;
        let echo = match ext::call("meshwork.test.echo", b"hi") {
            Ok(answer) => String::from_utf8_lossy(&answer).into_owned(),
            Err(e) => e.to_string(),
        };
        http::request().set("x-sdk-ext", &echo)?;
        if let Some(cluster) = &self.cfg.upstream {
            ext::call("meshwork.set_upstream", cluster.as_bytes())?;
        }
        if let Some(ms) = self.cfg.timeout_ms {
            ext::call("meshwork.set_timeout", ms.to_string().as_bytes())?;
        }
        if let Some(ms) = self.cfg.delay_ms {
            // The host resumes the request after the delay; the worker is free meanwhile.
            ext::call("meshwork.delay", ms.to_string().as_bytes())?;
            return Ok(Action::Pause);
        }
        Ok(Action::Continue)
    }
}
