//! Reading one virtual host out of an encoded `RouteConfiguration` without decoding the others: a sidecar's
//! `outbound` route configuration holds a virtual host per service (600 KB for 1,000 services), and 100 sidecar
//! clients decoding all of it on the one CPU the clients share would delay every other client's arrival time.

use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use prost::Message as _;

/// `RouteConfiguration.virtual_hosts` and `VirtualHost.name`.
const VIRTUAL_HOSTS: u64 = 2;
const NAME: u64 = 1;

/// The virtual host called `name` in the encoded route configuration `bytes`, if there is one.
pub fn find_vhost(bytes: &[u8], name: &str) -> Result<Option<VirtualHost>, String> {
    for (field, value) in Fields(bytes) {
        let Some(vhost) = value? else { continue };
        if field != VIRTUAL_HOSTS {
            continue;
        }
        for (inner, value) in Fields(vhost) {
            if inner == NAME && value? == Some(name.as_bytes()) {
                return VirtualHost::decode(vhost)
                    .map(Some)
                    .map_err(|e| e.to_string());
            }
        }
    }
    Ok(None)
}

/// The fields of an encoded message: number, and the bytes of length-delimited ones (`None` for others).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = (u64, Result<Option<&'a [u8]>, String>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut read = || -> Result<(u64, Option<&'a [u8]>), String> {
            let key = varint(&mut self.0)?;
            let skip = match key & 7 {
                0 => {
                    varint(&mut self.0)?;
                    0
                }
                1 => 8,
                5 => 4,
                2 => {
                    let len = usize::try_from(varint(&mut self.0)?).map_err(|e| e.to_string())?;
                    let (value, rest) = self.0.split_at_checked(len).ok_or("truncated field")?;
                    self.0 = rest;
                    return Ok((key >> 3, Some(value)));
                }
                other => return Err(format!("unsupported wire type {other}")),
            };
            self.0 = self.0.get(skip..).ok_or("truncated field")?;
            Ok((key >> 3, None))
        };
        Some(match read() {
            Ok((field, value)) => (field, Ok(value)),
            Err(e) => {
                self.0 = &[];
                (0, Err(e))
            }
        })
    }
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn vhost(name: &str, domains: &[&str]) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn finds_one_virtual_host() {
        let rc = RouteConfiguration {
            name: "outbound".into(),
            virtual_hosts: vec![
                vhost("a:80", &["a"]),
                vhost("b:80", &["b", "b:80"]),
                vhost("c:80", &[]),
            ],
            max_direct_response_body_size_bytes: Some(UInt32Value { value: 300 }),
            ..Default::default()
        };
        let bytes = rc.encode_to_vec();
        let table = [
            ("b:80", Some(vhost("b:80", &["b", "b:80"]))),
            ("c:80", Some(vhost("c:80", &[]))),
            ("x", None),
            ("outbound", None),
        ];
        for (name, want) in table {
            assert_eq!(find_vhost(&bytes, name), Ok(want), "{name}");
        }
        assert_eq!(find_vhost(&[], "a:80"), Ok(None));
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        let bytes = RouteConfiguration {
            virtual_hosts: vec![vhost("a:80", &["a"])],
            ..Default::default()
        }
        .encode_to_vec();
        for bad in [
            &bytes[..bytes.len() - 1],
            &[0x12, 0x80][..],
            &[0x0b][..],
            &[0xff; 11][..],
        ] {
            assert!(find_vhost(bad, "a:80").is_err(), "{bad:?}");
        }
    }
}
