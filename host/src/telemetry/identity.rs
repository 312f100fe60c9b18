//! A listener's telemetry identity, compiled once per config: the reporter side, the local workload, its SPIFFE
//! principal and the metadata-exchange headers it sends, ready to clone into requests.

use std::sync::Arc;

use http::HeaderValue;

use crate::config::telemetry::{Direction, ListenerTelemetry, Workload};

/// What a listener knows about itself for telemetry.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Which side of the call the listener sees.
    pub direction: Direction,
    /// The local workload, when known.
    pub workload: Option<Arc<Workload>>,
    /// The local workload's SPIFFE principal, when known.
    pub principal: Option<Arc<str>>,
    /// The metadata-exchange headers (`x-envoy-peer-metadata-id`, `x-envoy-peer-metadata`) of the local workload.
    pub exchange: Option<(HeaderValue, HeaderValue)>,
    /// The listener's access logs, if it has any (set by the model, which shares their writers across configs).
    pub access_log: Option<Arc<super::access_log::AccessLogs>>,
    /// Distributed tracing, when the listener has it.
    pub tracing: Option<Arc<super::trace::Tracer>>,
}

impl Telemetry {
    /// Compiles the config's settings.
    pub fn new(config: &ListenerTelemetry) -> Self {
        let workload = config.workload.clone().map(Arc::new);
        Telemetry {
            direction: config.direction,
            principal: workload.as_ref().and_then(|w| w.principal()).map(Arc::from),
            exchange: match config.direction {
                Direction::Unspecified => None,
                _ => workload.as_deref().and_then(super::peer::encode),
            },
            workload,
            access_log: None,
            tracing: None,
        }
    }

    /// Istio's `reporter` label: `destination` for inbound listeners, `source` otherwise.
    pub fn reporter(&self) -> &'static str {
        match self.direction {
            Direction::Inbound => "destination",
            Direction::Outbound | Direction::Unspecified => "source",
        }
    }
}
