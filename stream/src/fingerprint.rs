//! Device fingerprints: a normalised (IP, user agent) pair that a browser click and the app's own SDK
//! traffic from the same device share, and the Kafka partition key producers must use so that every hit and
//! event of one fingerprint lands on the same partition (the ordering the conversion matcher relies on).

use std::net::IpAddr;

/// The normalised network part: IPv4 as is (IPv4-mapped IPv6 unwrapped), IPv6 cut to its /64 prefix
/// (privacy extensions rotate the interface half, the prefix stays with the device's network).
pub fn normalise_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The normalised device part of a user agent.
///
/// A click comes from a browser (`Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) … Safari/604.1`)
/// while the install event comes from the app's HTTP client (`MyApp/2.3 (iPhone; iOS 17.1; Scale/3.00)`).
/// What both reliably carry is the platform and OS version, so when those are recognisable they are the
/// fingerprint (`ios 17.1`, `android 14`); otherwise the whole agent, lower-cased, whitespace collapsed.
pub fn normalise_user_agent(ua: &str) -> String {
    let lower = ua.to_ascii_lowercase();
    if let Some(v) = ios_version(&lower) {
        return format!("ios {v}");
    }
    if let Some(v) = version_after(&lower, "android ") {
        return format!("android {v}");
    }
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ios_version(ua: &str) -> Option<String> {
    if !(ua.contains("iphone") || ua.contains("ipad") || ua.contains("ipod")) {
        return None;
    }
    // Browser: "cpu iphone os 17_1_2 like mac os x" / "cpu os 17_1 like mac os x" (iPad).
    for marker in ["iphone os ", "cpu os "] {
        if let Some(v) = version_after(ua, marker) {
            return Some(v);
        }
    }
    // SDK clients: "ios 17.1", "ios/17.1".
    for marker in ["ios ", "ios/"] {
        if let Some(v) = version_after(ua, marker) {
            return Some(v);
        }
    }
    None
}

/// Major.minor after `marker` (`17_1_2` → `17.1`, `14` → `14`), if digits follow it.
fn version_after(ua: &str, marker: &str) -> Option<String> {
    let start = ua.find(marker)? + marker.len();
    let rest = &ua[start..];
    let raw: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '_')
        .collect();
    let mut parts = raw.split(['.', '_']).filter(|p| !p.is_empty());
    let major = parts.next()?;
    Some(match parts.next() {
        Some(minor) => format!("{major}.{minor}"),
        None => major.to_string(),
    })
}

/// The fingerprint of (ip, user agent): 16 hex digits of a stable 64-bit FNV-1a hash of the normalised
/// pair. Stable across versions and machines (it is stored and used as a key).
pub fn fingerprint(ip: IpAddr, user_agent: &str) -> String {
    let text = format!("{}|{}", normalise_ip(ip), normalise_user_agent(user_agent));
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

/// The Kafka message key producers must use for hits and events: `app_id` and fingerprint, so one
/// device's clicks and SDK events are on one partition, in one order.
pub fn partition_key(app_id: &str, ip: IpAddr, user_agent: &str) -> String {
    format!("{app_id}|{}", fingerprint(ip, user_agent))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_and_sdk_agents_of_one_iphone_agree() {
        let browser =
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 \
                       (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        let sdk = "MyApp/2.3 (iPhone; iOS 17.1; Scale/3.00)";
        assert_eq!(normalise_user_agent(browser), "ios 17.1");
        assert_eq!(normalise_user_agent(sdk), "ios 17.1");
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(fingerprint(ip, browser), fingerprint(ip, sdk));
        assert_ne!(
            fingerprint(ip, browser),
            fingerprint("203.0.113.10".parse().unwrap(), sdk)
        );
    }

    #[test]
    fn android_and_unknown_agents() {
        let chrome =
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile";
        assert_eq!(normalise_user_agent(chrome), "android 14");
        assert_eq!(
            normalise_user_agent("okhttp/4.12  (Android 14.0.1)"),
            "android 14.0"
        );
        assert_eq!(normalise_user_agent("  Some   Bot/1.0 "), "some bot/1.0");
        assert_eq!(normalise_user_agent(""), "");
    }

    #[test]
    fn ip_normalisation() {
        assert_eq!(normalise_ip("::ffff:1.2.3.4".parse().unwrap()), "1.2.3.4");
        assert_eq!(
            normalise_ip("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            normalise_ip("2001:db8:1:2:aaaa::1".parse().unwrap()),
            normalise_ip("2001:db8:1:2:bbbb:cccc::9".parse().unwrap())
        );
    }

    /// The examples of docs/STREAM.md, which producers compute the key from.
    #[test]
    fn the_documented_examples_hold() {
        let cases = [
            (
                "203.0.113.9",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 Safari/604.1",
                "203.0.113.9|ios 17.1",
                "f90972d377a39950",
            ),
            (
                "203.0.113.9",
                "MyApp/2.3 (iPhone; iOS 17.1; Scale/3.00)",
                "203.0.113.9|ios 17.1",
                "f90972d377a39950",
            ),
            (
                "2001:db8:1:2:aaaa::1",
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120.0",
                "2001:db8:1:2::/64|android 14",
                "3dd59d0705274d80",
            ),
            (
                "::ffff:1.2.3.4",
                "  Some   Bot/1.0 ",
                "1.2.3.4|some bot/1.0",
                "7ff9863135108238",
            ),
        ];
        for (ip, ua, normalised, fp) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                format!("{}|{}", normalise_ip(ip), normalise_user_agent(ua)),
                normalised
            );
            assert_eq!(fingerprint(ip, ua), fp);
        }
        assert_eq!(
            partition_key(
                "a1",
                "203.0.113.9".parse().unwrap(),
                "x (iPad; CPU OS 17_1 like Mac OS X)"
            ),
            "a1|f90972d377a39950"
        );
        assert_eq!(
            normalise_ip("2001:0DB8:0001:0002:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            normalise_ip("2001:db8::1".parse().unwrap()),
            "2001:db8:0:0::/64"
        );
        // First match wins: an iPhone agent naming Android is iOS; a marker without digits is skipped.
        assert_eq!(
            normalise_user_agent("X (iPhone; iOS 16.4; Android 13)"),
            "ios 16.4"
        );
        assert_eq!(
            normalise_user_agent("X (iPhone OS beta; iOS 17.2)"),
            "ios 17.2"
        );
        // ASCII lower-casing only.
        assert_eq!(normalise_user_agent("ÄPP Bot"), "Äpp bot");
    }

    #[test]
    fn fingerprint_is_stable() {
        // A stored key: this value must never change between versions.
        assert_eq!(
            fingerprint("1.2.3.4".parse().unwrap(), "UA"),
            format!("{:016x}", fnv1a64(b"1.2.3.4|ua"))
        );
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
