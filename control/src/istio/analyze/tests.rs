//! Every analysis rule, as a change to a mesh that analyzes clean and the findings the change must produce.

use crate::istio::{Severity, load_str};

use super::analyze;

const MESH: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec: {address: 127.0.0.1, labels: {app: reviews, version: v1}, ports: {http: 9081}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2}
spec: {address: 127.0.0.2, labels: {app: reviews, version: v2}, ports: {http: 9082}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 100}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]
  - route:
    - {destination: {host: reviews.default.svc.cluster.local, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
    timeout: 2s
    retries: {attempts: 2, perTryTimeout: 500ms}
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 5}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews}
spec:
  selector: {matchLabels: {version: v1}}
  mtls: {mode: STRICT}
  portLevelMtls: {9081: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]}]
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: router}
spec:
  selector: {matchLabels: {version: v2}}
  url: builtin://router
";

/// The findings of `text` as (severity, field, message).
fn findings(text: &str) -> Vec<(Severity, String, String)> {
    let loaded = load_str(text, "mesh.yaml").unwrap_or_else(|d| panic!("{d:?}"));
    analyze(&loaded)
        .into_iter()
        .map(|d| {
            (
                d.severity,
                d.field.map(|f| f.to_string()).unwrap_or_default(),
                d.message,
            )
        })
        .collect()
}

/// Each expected finding is (severity, field, start of the message); the findings must be exactly those.
fn check(text: &str, want: &[(Severity, &str, &str)], case: &str) {
    let got = findings(text);
    let matches = got.len() == want.len()
        && want.iter().all(|(s, f, m)| {
            got.iter()
                .any(|(gs, gf, gm)| gs == s && gf == f && gm.starts_with(m))
        });
    assert!(matches, "{case}:\nwant {want:#?}\n got {got:#?}");
}

/// One change to the mesh: replace the first `from` with `to`, and the findings that must follow.
type Change<'a> = (&'a str, &'a str, &'a [(Severity, &'a str, &'a str)]);

/// Checks each change of the mesh on its own.
fn check_changes(cases: &[Change<'_>]) {
    for (from, to, want) in cases {
        assert!(MESH.contains(from), "{from} is not in the mesh");
        check(
            &MESH.replacen(from, to, 1),
            want,
            &format!("{from} -> {to}"),
        );
    }
}

use Severity::{Error as E, Warning as W};

#[test]
fn the_mesh_is_clean() {
    check(MESH, &[], "base");
}

#[test]
fn value_errors() {
    let cases: &[Change<'_>] = &[
        (
            "weight: 10}",
            "weight: 20}",
            &[(
                E,
                "spec.http[1].route",
                "the weights of the 2 destinations add up to 110; make them add up to 100",
            )],
        ),
        (
            "weight: 90}",
            "weight: -90}",
            &[(
                E,
                "spec.http[1].route[0].weight",
                "must be 0 or more; got -90",
            )],
        ),
        (
            ", weight: 10}",
            "}",
            &[(
                E,
                "spec.http[1].route",
                "the weights of the 2 destinations add up to 90",
            )],
        ),
        (
            "percentage: {value: 5}",
            "percentage: {value: 150}",
            &[(
                E,
                "spec.http[1].fault.delay.percentage.value",
                "must be a percentage between 0 and 100; got 150",
            )],
        ),
        (
            "maxEjectionPercent: 50",
            "maxEjectionPercent: 120",
            &[(
                E,
                "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
                "must be a percentage between 0 and 100; got 120",
            )],
        ),
        (
            "{exact: jason}",
            "{regex: 'jas(on'}",
            &[(
                E,
                "spec.http[0].match[0].headers.end-user.regex",
                "`jas(on` is not a valid regular expression",
            )],
        ),
        (
            "{exact: jason}",
            "{regex: '\\p{L}+'}",
            &[(
                E,
                "spec.http[0].match[0].headers.end-user.regex",
                "`\\p{L}+` is not a valid regular expression",
            )],
        ),
        (
            "{exact: jason}",
            "{exact: jason, prefix: j}",
            &[(
                E,
                "spec.http[0].match[0].headers.end-user",
                "give only one of `exact`, `prefix` and `regex`",
            )],
        ),
        (
            "match: [{headers:",
            "match: [{uri: {}, headers:",
            &[(E, "spec.http[0].match[0].uri", "empty match: give one of")],
        ),
        (
            "perTryTimeout: 500ms",
            "perTryTimeout: 500us",
            &[(
                E,
                "spec.http[1].retries.perTryTimeout",
                "`500us`: Istio takes durations to the millisecond only",
            )],
        ),
        (
            "perTryTimeout: 500ms",
            "perTryTimeout: 0s",
            &[(
                E,
                "spec.http[1].retries.perTryTimeout",
                "`0s`: must be at least 1ms",
            )],
        ),
        (
            "attempts: 2",
            "attempts: -1",
            &[(
                E,
                "spec.http[1].retries.attempts",
                "must be 0 or more; got -1",
            )],
        ),
        (
            "fixedDelay: 1s",
            "fixedDelay: 6m",
            &[(
                E,
                "spec.http[1].fault.delay.fixedDelay",
                "`6m` is longer than meshwork can hold a request (5m)",
            )],
        ),
        (
            "delay: {fixedDelay: 1s, percentage: {value: 5}}",
            "delay: {percentage: {value: 5}}",
            &[(E, "spec.http[1].fault.delay", "a delay needs `fixedDelay`")],
        ),
        (
            "delay: {fixedDelay: 1s, percentage: {value: 5}}",
            "abort: {httpStatus: 700, percentage: {value: 5}}",
            &[(
                E,
                "spec.http[1].fault.abort.httpStatus",
                "must be an HTTP status between 200 and 599; got 700",
            )],
        ),
        (
            "delay: {fixedDelay: 1s, percentage: {value: 5}}",
            "abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}",
            &[(
                E,
                "spec.http[1].fault.abort",
                "an abort needs exactly one of",
            )],
        ),
        (
            "route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]",
            "directResponse: {status: 99}",
            &[(
                E,
                "spec.http[0].directResponse.status",
                "must be an HTTP status between 200 and 599; got 99",
            )],
        ),
        (
            "route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]",
            "name: nothing",
            &[(E, "spec.http[0]", "the route does nothing")],
        ),
        (
            "port: {number: 9080}}}]",
            "port: {number: 0}}}]",
            &[(
                E,
                "spec.http[0].route[0].destination.port.number",
                "must be a port number between 1 and 65535; got 0",
            )],
        ),
        (
            "{number: 9080, name: http",
            "{number: 70000, name: http",
            &[(
                E,
                "spec.ports[0].number",
                "must be a port number between 1 and 65535; got 70000",
            )],
        ),
        (
            "ports: {http: 9082}",
            "ports: {http: 0}",
            &[(
                E,
                "spec.ports.http",
                "must be a port number between 1 and 65535; got 0",
            )],
        ),
        (
            "url: builtin://router",
            "url: builtin://router\n  sha256: abc123",
            &[(
                E,
                "spec.sha256",
                "`abc123` is not a SHA-256: write its 64 hex digits",
            )],
        ),
        (
            "url: builtin://router",
            "url: s3://bucket/filter.wasm",
            &[(
                E,
                "spec.url",
                "`s3://` is not a module source: use oci://, file://, http://, https:// or builtin://",
            )],
        ),
        (
            "url: builtin://router",
            "url: https://example.com/f.wasm\n  verificationKey: x\n  imagePullSecret: s",
            &[
                (
                    E,
                    "spec.verificationKey",
                    "signatures are checked on oci:// modules only (they are stored beside the OCI artifact): push the module with `meshwork filter push`, sign it, and use its oci:// URL",
                ),
                (
                    E,
                    "spec.verificationKey",
                    "cannot read the public key: no `PUBLIC KEY` PEM block found (cosign.pub has one)",
                ),
                (
                    W,
                    "spec.imagePullSecret",
                    "does not apply to this url's scheme; it is ignored",
                ),
            ],
        ),
        (
            "url: builtin://router",
            "url: builtin://router\n  imagePullSecret: regcred",
            &[(
                W,
                "spec.imagePullSecret",
                "does not apply to this url's scheme; it is ignored",
            )],
        ),
        (
            "url: builtin://router",
            "url: oci://r/f:1\n  verificationKey: not a key",
            &[(
                E,
                "spec.verificationKey",
                "cannot read the public key: no `PUBLIC KEY` PEM block found (cosign.pub has one)",
            )],
        ),
        (
            "url: builtin://router",
            "url: ghcr.io/acme/filter:1",
            &[(
                W,
                "spec.url",
                "`ghcr.io/acme/filter:1` has no scheme, so it is read as an OCI image",
            )],
        ),
        (
            "action: ALLOW",
            "action: CUSTOM",
            &[(E, "spec.provider", "a CUSTOM policy needs `provider.name`")],
        ),
        (
            "action: ALLOW",
            "action: ALLOW\n  provider: {name: opa}",
            &[(
                E,
                "spec.provider",
                "`provider` is only for `action: CUSTOM`",
            )],
        ),
        (
            "url: builtin://router",
            "url: builtin://router\n  targetRefs: [{kind: Service, name: reviews}]",
            &[(
                E,
                "spec.selector",
                "give `selector` or `targetRefs`, not both",
            )],
        ),
        (
            "  subsets:\n  - {name: v1",
            "  subsets:\n  - {name: v2, labels: {version: v2}}\n  - {name: v1",
            &[(E, "spec.subsets[2].name", "subset `v2` is defined twice")],
        ),
        (
            "{9081: {mode: PERMISSIVE}}",
            "{0: {mode: PERMISSIVE}}",
            &[(
                E,
                "spec.portLevelMtls.0",
                "must be a port number between 1 and 65535; got 0",
            )],
        ),
    ];
    check_changes(cases);
}

#[test]
fn reference_warnings() {
    let cases: &[Change<'_>] = &[
        (
            "{host: reviews, subset: v2, port",
            "{host: ratings, subset: v2, port",
            &[(
                W,
                "spec.http[0].route[0].destination.host",
                "`ratings` (`ratings.default.svc.cluster.local`) is not a known service: no ServiceEntry has this host",
            )],
        ),
        (
            "{host: reviews, subset: v2, port",
            "{host: reviews.shop, subset: v2, port",
            &[(
                W,
                "spec.http[0].route[0].destination.host",
                "`reviews.shop` is not a known service",
            )],
        ),
        (
            "{host: reviews, subset: v2, port",
            "{host: reviews, subset: v3, port",
            &[(
                W,
                "spec.http[0].route[0].destination.subset",
                "subset `v3` of `reviews.default.svc.cluster.local` is not defined: its DestinationRules define v1, v2",
            )],
        ),
        (
            "hosts: [reviews.default.svc.cluster.local]",
            "hosts: [reviews.default.svc.cluster.local, details]",
            &[],
        ),
        (
            "{name: v2, labels: {version: v2}}",
            "{name: v2, labels: {version: v3}}",
            &[(
                W,
                "spec.subsets[1].labels",
                "no endpoint of `reviews.default.svc.cluster.local` has the labels version=v3: subset `v2` is empty",
            )],
        ),
        (
            "workloadSelector: {labels: {app: reviews}}",
            "workloadSelector: {labels: {app: reviewz}}",
            &[
                (
                    W,
                    "spec.workloadSelector.labels",
                    "no WorkloadEntry in namespace `default` has the labels app=reviewz: the service has no endpoints",
                ),
                (
                    W,
                    "spec.labels",
                    "no ServiceEntry in namespace `default` selects this WorkloadEntry",
                ),
                (
                    W,
                    "spec.labels",
                    "no ServiceEntry in namespace `default` selects this WorkloadEntry",
                ),
                (
                    W,
                    "spec.subsets[0].labels",
                    "no endpoint of `reviews.default.svc.cluster.local` has the labels version=v1",
                ),
                (
                    W,
                    "spec.subsets[1].labels",
                    "no endpoint of `reviews.default.svc.cluster.local` has the labels version=v2",
                ),
            ],
        ),
        (
            "labels: {app: reviews, version: v1}",
            "labels: {app: other, version: v1}",
            &[
                (
                    W,
                    "spec.labels",
                    "no ServiceEntry in namespace `default` selects this WorkloadEntry",
                ),
                (
                    W,
                    "spec.subsets[0].labels",
                    "no endpoint of `reviews.default.svc.cluster.local` has the labels version=v1",
                ),
            ],
        ),
        (
            "matchLabels: {version: v1}",
            "matchLabels: {version: v9}",
            &[(
                W,
                "spec.selector.matchLabels",
                "no WorkloadEntry in namespace `default` has the labels version=v9: this selects nothing",
            )],
        ),
        (
            "matchLabels: {app: reviews}",
            "matchLabels: {app: nobody}",
            &[(
                W,
                "spec.selector.matchLabels",
                "no WorkloadEntry in namespace `default` has the labels app=nobody",
            )],
        ),
        (
            "matchLabels: {version: v2}",
            "matchLabels: {version: v2, tier: x}",
            &[(
                W,
                "spec.selector.matchLabels",
                "no WorkloadEntry in namespace `default` has the labels tier=x, version=v2",
            )],
        ),
        // A root-namespace selector selects in every namespace; Istio ignores a PeerAuthentication's, though.
        (
            "metadata: {name: reviews}\nspec:\n  selector: {matchLabels: {version: v1}}",
            "metadata: {name: reviews, namespace: istio-system}\nspec:\n  selector: {matchLabels: {version: v1}}",
            &[(
                W,
                "spec.selector",
                "a PeerAuthentication with a `selector` in the root namespace `istio-system` applies to no workload",
            )],
        ),
        (
            "metadata: {name: reviews}\nspec:\n  selector: {matchLabels: {version: v1}}",
            "metadata: {name: reviews, namespace: shop}\nspec:\n  selector: {matchLabels: {version: v1}}",
            &[(
                W,
                "spec.selector.matchLabels",
                "no WorkloadEntry in namespace `shop` has the labels version=v1",
            )],
        ),
    ];
    check_changes(cases);
    // A DestinationRule for another host: the routes' subsets lose their definitions.
    let moved = MESH.replacen("  host: reviews\n", "  host: details\n", 1);
    let got = findings(&moved);
    assert_eq!(
        got.iter()
            .filter(|(_, _, m)| m.contains("no DestinationRule for this host defines subsets"))
            .count(),
        3
    );
    assert!(got.iter().any(|(s, f, _)| *s == W && f == "spec.host"));
}

#[test]
fn unsupported_virtual_service_features() {
    let vs = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: extras}
spec:
  hosts: [reviews]
  gateways: [mesh, edge-gateway]
  http:
  - match: [{queryParams: {debug: {exact: '1'}}, sourceLabels: {app: a}, sourceNamespace: shop, authority: {exact: a}, gateways: [edge-gateway]}]
    route: [{destination: {host: reviews}, headers: {request: {set: {x: y}}}}]
    rewrite: {uri: /v2}
    headers: {response: {remove: [server]}}
    mirror: {host: reviews}
    mirrorPercentage: {value: 10}
    mirrors: [{destination: {host: reviews}}]
    corsPolicy: {allowOrigins: [{exact: 'https://a.example'}]}
  - redirect: {uri: /new, derivePort: FROM_REQUEST_PORT}
  - delegate: {name: other}
  tls:
  - match: [{sniHosts: [reviews]}]
    route: [{destination: {host: reviews}}]
  tcp:
  - route: [{destination: {host: reviews}, weight: 50}, {destination: {host: reviews}, weight: 50}]
";
    let text = format!("{MESH}---\n{vs}");
    let got = findings(&text);
    let unsupported: Vec<&str> = got
        .iter()
        .filter(|(s, _, m)| *s == W && m.starts_with("meshwork does not apply"))
        .map(|(_, f, _)| f.as_str())
        .collect();
    let want = [
        "spec.tls",
        "spec.tcp",
        "spec.http[0].mirror",
        "spec.http[0].mirrors",
        "spec.http[0].mirrorPercentage",
        "spec.http[0].corsPolicy",
        "spec.http[0].match[0].queryParams",
        "spec.http[0].match[0].sourceLabels",
        "spec.http[0].match[0].sourceNamespace",
        "spec.http[0].match[0].authority",
        "spec.http[1].redirect.derivePort",
        "spec.http[2].delegate",
    ];
    let mut sorted = unsupported.clone();
    sorted.sort_unstable();
    let mut want_sorted = want.to_vec();
    want_sorted.sort_unstable();
    assert_eq!(sorted, want_sorted);
    let gateways: Vec<&str> = got
        .iter()
        .filter(|(_, _, m)| m.starts_with("gateway `edge-gateway`"))
        .map(|(_, f, _)| f.as_str())
        .collect();
    assert_eq!(
        gateways,
        ["spec.gateways[1]", "spec.http[0].match[0].gateways[0]"]
    );
    assert_eq!(got.len(), 14, "{got:#?}");
}

#[test]
fn destination_rule_tls_not_applied() {
    let cases: &[Change<'_>] = &[
        (
            "  - {name: v1, labels: {version: v1}}",
            "  - {name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}",
            &[],
        ),
        (
            "    connectionPool:",
            "    tls: {mode: DISABLE}\n    connectionPool:",
            &[],
        ),
        (
            "    connectionPool:",
            "    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem}\n    connectionPool:",
            &[(
                W,
                "spec.trafficPolicy.tls.mode",
                "meshwork does not apply `mode: SIMPLE` yet: no TLS with certificates from files is originated",
            )],
        ),
        (
            "    connectionPool:",
            "    portLevelSettings: [{port: {number: 9080}, tls: {mode: ISTIO_MUTUAL}}, {port: {number: 9081}, tls: {mode: MUTUAL}}]\n    connectionPool:",
            &[(
                W,
                "spec.trafficPolicy.portLevelSettings[1].tls.mode",
                "meshwork does not apply `mode: MUTUAL` yet",
            )],
        ),
        (
            "  - {name: v2, labels: {version: v2}}",
            "  - {name: v2, labels: {version: v2}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: 'not a name'}}}",
            &[(
                W,
                "spec.subsets[1].trafficPolicy.tls.sni",
                "`not a name` is not a DNS name a TLS client can send",
            )],
        ),
    ];
    check_changes(cases);
}

#[test]
fn findings_point_at_lines_and_are_sorted() {
    let text = MESH.replacen("weight: 90}", "weight: -90}", 1).replacen(
        "{name: v1, labels: {version: v1}}",
        "{name: v1, labels: {version: v9}}",
        1,
    );
    let loaded = load_str(&text, "mesh.yaml").unwrap();
    let diags = analyze(&loaded);
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(
        shown[0].starts_with("mesh.yaml:29: field `spec.subsets[0].labels`: no endpoint"),
        "{}",
        shown[0]
    );
    assert!(
        shown[1]
            .starts_with("mesh.yaml:41: field `spec.http[1].route[0].weight`: must be 0 or more"),
        "{}",
        shown[1]
    );
}
