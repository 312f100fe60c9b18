//! Round trips: each kind read from Istio YAML serializes back to the same JSON (same field names, nothing added or
//! lost), which is what lets the translation hand sub-objects to the policy filters as they are.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::*;

/// Deserializes `yaml` as `Resource<S>` and checks it serializes back to the same JSON; returns it.
fn round_trip<S: Serialize + DeserializeOwned + std::fmt::Debug + PartialEq>(
    yaml: &str,
) -> Resource<S> {
    let typed: Resource<S> = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut want: Value = serde_yaml::from_str(yaml).unwrap();
    if want["metadata"].get("namespace").is_none() {
        want["metadata"]["namespace"] = "default".into();
    }
    let got = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        numbers_as_f64(got.clone()),
        numbers_as_f64(want),
        "round trip of\n{yaml}"
    );
    let again: Resource<S> = serde_json::from_value(got).unwrap();
    assert_eq!(again, typed);
    typed
}

/// `10` and `10.0` are the same number to every reader of the JSON (the filters read percentages as `f64`).
fn numbers_as_f64(v: Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), Value::from),
        Value::Array(a) => a.into_iter().map(numbers_as_f64).collect(),
        Value::Object(o) => o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect(),
        other => other,
    }
}

const SERVICE_ENTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default, labels: { app: reviews } }
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [10.0.0.7]
  ports: [{ number: 9080, protocol: HTTP, name: http, targetPort: 8080 }]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: { labels: { app: reviews } }
  exportTo: ["."]
"#;

const WORKLOAD_ENTRY: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: default }
spec:
  address: 127.0.0.1
  ports: { http: 9081 }
  labels: { app: reviews, version: v1 }
  network: net1
  locality: eu/west/a
  weight: 3
  serviceAccount: reviews
"#;

const VIRTUAL_SERVICE: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  gateways: [mesh]
  http:
    - name: jason
      match:
        - name: m0
          uri: { prefix: /api }
          method: { exact: GET }
          headers: { end-user: { exact: jason }, x-present: {} }
          withoutHeaders: { x-skip: {} }
          queryParams: { debug: { regex: "1|true" } }
          port: 9080
          sourceLabels: { app: productpage }
          sourceNamespace: default
          ignoreUriCase: true
      route:
        - destination: { host: reviews, subset: v2, port: { number: 9080 } }
          weight: 90
          headers: { request: { set: { x-v: "2" } } }
        - destination: { host: reviews, subset: v1 }
          weight: 10
      timeout: 1.5s
      retries: { attempts: 3, perTryTimeout: 250ms, retryOn: "5xx,reset", retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 25ms }
      fault:
        delay: { fixedDelay: 5s, percentage: { value: 0.1 } }
        abort: { httpStatus: 503, percentage: { value: 10 } }
      mirror: { host: reviews, subset: v3 }
      mirrorPercentage: { value: 5 }
      mirrors: [{ destination: { host: shadow }, percentage: { value: 1 } }]
      corsPolicy: { allowOrigins: [{ exact: "https://a.example" }], allowMethods: [GET], maxAge: 24h, allowCredentials: true }
      headers: { response: { add: { x-mesh: meshwork }, remove: [server] } }
      rewrite: { uri: /v2, authority: reviews.internal }
    - redirect: { uri: /new, authority: shop.example, scheme: https, redirectCode: 302 }
    - directResponse: { status: 418, body: { string: teapot } }
    - delegate: { name: other, namespace: shop }
  tls:
    - match: [{ sniHosts: [reviews.example], port: 443 }]
      route: [{ destination: { host: reviews.example }, weight: 100 }]
  tcp:
    - match: [{ port: 3306, sourceSubnet: 10.0.0.0/8 }]
      route: [{ destination: { host: mysql, port: { number: 3306 } } }]
  exportTo: ["*"]
"#;

const DESTINATION_RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    connectionPool:
      tcp: { maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: { time: 7200s, interval: 75s } }
      http: { http1MaxPendingRequests: 10, http2MaxRequests: 100, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: 1h, h2UpgradePolicy: UPGRADE, useClientProtocol: true, maxConcurrentStreams: 50 }
    outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 2, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 10, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3 }
    tls: { mode: ISTIO_MUTUAL, sni: reviews.default }
    portLevelSettings:
      - port: { number: 9080 }
        loadBalancer: { consistentHash: { httpHeaderName: x-user } }
    retryBudget: { percent: 20, minRetryConcurrency: 3 }
  subsets:
    - name: v1
      labels: { version: v1 }
    - name: v2
      labels: { version: v2 }
      trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
  exportTo: ["."]
  workloadSelector: { matchLabels: { app: productpage } }
"#;

const PEER_AUTHENTICATION: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  mtls: { mode: STRICT }
  portLevelMtls: { "8080": { mode: PERMISSIVE } }
"#;

const AUTHORIZATION_POLICY: &str = r#"
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: { name: allow-productpage, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/default/sa/productpage"], notIpBlocks: [10.9.0.0/16] } }]
      to: [{ operation: { methods: [GET], paths: ["/api/*"], ports: ["9080"] } }]
      when: [{ key: "request.headers[x-user]", values: [jason], notValues: [bob] }]
    - {}
"#;

const WASM_PLUGIN: &str = r#"
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: { name: rate-limit, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  url: oci://ghcr.io/example/rate-limit:1.0
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  imagePullPolicy: IfNotPresent
  imagePullSecret: regcred
  pluginConfig: { limit: 10, paths: [/a, /b], nested: { on: true } }
  pluginName: rate_limit
  phase: AUTHZ
  priority: 10
  failStrategy: FAIL_OPEN
  vmConfig: { env: [{ name: MODE, value: strict }, { name: POD_NAME, valueFrom: HOST }] }
  match: [{ mode: SERVER, ports: [{ number: 9080 }] }]
  type: HTTP
"#;

#[test]
fn every_kind_round_trips() {
    let se = round_trip::<ServiceEntry>(SERVICE_ENTRY);
    assert_eq!(se.spec.resolution, Some(Resolution::Static));
    let we = round_trip::<WorkloadEntry>(WORKLOAD_ENTRY);
    assert_eq!(we.spec.ports["http"], 9081);
    let vs = round_trip::<VirtualService>(VIRTUAL_SERVICE);
    assert_eq!(vs.metadata.namespace, "default", "namespace defaults");
    let http = &vs.spec.http[0];
    assert_eq!(
        http.timeout.as_ref().map(|d| d.get().as_millis()),
        Some(1500)
    );
    assert_eq!(http.route[1].weight, Some(10));
    let dr = round_trip::<DestinationRule>(DESTINATION_RULE);
    assert_eq!(dr.spec.subsets[1].name, "v2");
    let pa = round_trip::<PeerAuthentication>(PEER_AUTHENTICATION);
    assert_eq!(pa.spec.port_level_mtls[&8080].mode, MtlsMode::Permissive);
    let ap = round_trip::<AuthorizationPolicy>(AUTHORIZATION_POLICY);
    assert_eq!(ap.spec.action, Some(Action::Allow));
    let wp = round_trip::<WasmPlugin>(WASM_PLUGIN);
    assert_eq!(wp.spec.fail_strategy, Some(FailStrategy::FailOpen));
}

#[test]
fn sub_objects_serialize_with_istios_names() {
    let vs: Resource<VirtualService> = serde_yaml::from_str(VIRTUAL_SERVICE).unwrap();
    let http = &vs.spec.http[0];
    assert_eq!(
        serde_json::to_value(&http.fault).unwrap(),
        serde_json::json!({"delay": {"fixedDelay": "5s", "percentage": {"value": 0.1}},
                           "abort": {"httpStatus": 503, "percentage": {"value": 10.0}}})
    );
    assert_eq!(
        serde_json::to_value(&http.retries).unwrap(),
        serde_json::json!({"attempts": 3, "perTryTimeout": "250ms", "retryOn": "5xx,reset",
                           "retryRemoteLocalities": true, "retryIgnorePreviousHosts": false, "backoff": "25ms"})
    );
    let dr: Resource<DestinationRule> = serde_yaml::from_str(DESTINATION_RULE).unwrap();
    let tp = dr.spec.traffic_policy.unwrap();
    let od = serde_json::to_value(&tp.outlier_detection).unwrap();
    assert_eq!(od["consecutive5xxErrors"], 5);
    assert_eq!(od["baseEjectionTime"], "30s");
    let cp = serde_json::to_value(&tp.connection_pool).unwrap();
    assert_eq!(cp["http"]["http2MaxRequests"], 100);
    assert_eq!(cp["http"]["http1MaxPendingRequests"], 10);
    let ap: Resource<AuthorizationPolicy> = serde_yaml::from_str(AUTHORIZATION_POLICY).unwrap();
    let rules = serde_json::to_value(&ap.spec.rules).unwrap();
    assert_eq!(
        rules[0]["from"][0]["source"]["notIpBlocks"][0],
        "10.9.0.0/16"
    );
    assert_eq!(rules[1], serde_json::json!({}));
    let pa: Resource<PeerAuthentication> = serde_yaml::from_str(PEER_AUTHENTICATION).unwrap();
    assert_eq!(
        serde_json::to_value(&pa.spec.port_level_mtls).unwrap(),
        serde_json::json!({"8080": {"mode": "PERMISSIVE"}})
    );
    let bare: Resource<PeerAuthentication> =
        serde_yaml::from_str(&PEER_AUTHENTICATION.replace("\"8080\"", "8080")).unwrap();
    assert_eq!(bare, pa, "a bare port key reads as a quoted one");
    let bad = serde_yaml::from_str::<Resource<PeerAuthentication>>(
        &PEER_AUTHENTICATION.replace("\"8080\"", "http"),
    );
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("`http` is not a port number")
    );
}

#[test]
fn unknown_fields_and_enum_values_are_refused() {
    let cases = [
        (
            VIRTUAL_SERVICE.replace("retryOn:", "retryOnn:"),
            "unknown field `retryOnn`",
        ),
        (
            DESTINATION_RULE.replace("LEAST_REQUEST", "LEAST_REQUESTS"),
            "unknown variant `LEAST_REQUESTS`",
        ),
        (
            PEER_AUTHENTICATION.replace("STRICT", "strict"),
            "unknown variant `strict`",
        ),
        (
            WASM_PLUGIN.replace("FAIL_OPEN", "FAIL_CLOSED"),
            "unknown variant `FAIL_CLOSED`",
        ),
        (
            SERVICE_ENTRY.replace("location:", "locaton:"),
            "unknown field `locaton`",
        ),
        (
            VIRTUAL_SERVICE.replace("timeout: 1.5s", "timeout: 1.5"),
            "`1.5` is not a duration",
        ),
        (
            WORKLOAD_ENTRY.replace("name: reviews-v1, ", ""),
            "missing field `name`",
        ),
    ];
    for (yaml, want) in cases {
        let err = match () {
            _ if yaml.contains("kind: VirtualService") => {
                serde_yaml::from_str::<Resource<VirtualService>>(&yaml).map(drop)
            }
            _ if yaml.contains("kind: DestinationRule") => {
                serde_yaml::from_str::<Resource<DestinationRule>>(&yaml).map(drop)
            }
            _ if yaml.contains("kind: PeerAuthentication") => {
                serde_yaml::from_str::<Resource<PeerAuthentication>>(&yaml).map(drop)
            }
            _ if yaml.contains("kind: WasmPlugin") => {
                serde_yaml::from_str::<Resource<WasmPlugin>>(&yaml).map(drop)
            }
            _ if yaml.contains("kind: ServiceEntry") => {
                serde_yaml::from_str::<Resource<ServiceEntry>>(&yaml).map(drop)
            }
            _ => serde_yaml::from_str::<Resource<WorkloadEntry>>(&yaml).map(drop),
        }
        .unwrap_err();
        assert!(err.to_string().contains(want), "{want}: got {err}");
    }
}

#[test]
fn kubectl_output_loads() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
  uid: 5c1d
  resourceVersion: "123"
  generation: 2
  creationTimestamp: "2026-01-01T00:00:00Z"
spec: { host: reviews }
status: { observedGeneration: 2 }
"#;
    let dr: Resource<DestinationRule> = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(dr.metadata.name, "reviews");
    let back = serde_json::to_value(&dr).unwrap();
    assert_eq!(
        back,
        serde_json::json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                           "metadata": {"name": "reviews", "namespace": "default"}, "spec": {"host": "reviews"}})
    );
}
