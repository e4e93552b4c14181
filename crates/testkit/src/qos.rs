//! A pod's QoS class as the API server computes it at admission (k8s.io/kubernetes
//! `pkg/apis/core/helper/qos`, the 1.37 algorithm): per container (init containers too) or,
//! when the pod sets pod-level resources, for the pod, CPU and memory each compare request and
//! limit: unequal → Burstable, both zero → BestEffort, equal and non-zero → Guaranteed; mixed
//! results make the pod Burstable. A request missing beside a limit defaults to the limit, as
//! the v1 defaulting does before QoS is computed.

use serde_json::Value;

/// `status.qosClass` for a pod `spec`.
pub(crate) fn pod_qos(spec: &Value) -> &'static str {
    let pod_level = &spec["resources"];
    if has_any(pod_level) {
        return requirements_qos(pod_level);
    }
    let mut pod: Option<&'static str> = None;
    for field in ["initContainers", "containers"] {
        for c in spec[field].as_array().into_iter().flatten() {
            let q = requirements_qos(&c["resources"]);
            match pod {
                _ if q == BURSTABLE => return BURSTABLE,
                None => pod = Some(q),
                Some(p) if p != q => return BURSTABLE,
                Some(_) => {}
            }
        }
    }
    pod.unwrap_or(BEST_EFFORT)
}

const BEST_EFFORT: &str = "BestEffort";
const BURSTABLE: &str = "Burstable";
const GUARANTEED: &str = "Guaranteed";

fn has_any(resources: &Value) -> bool {
    ["requests", "limits"]
        .iter()
        .any(|k| resources[*k].as_object().is_some_and(|m| !m.is_empty()))
}

fn requirements_qos(resources: &Value) -> &'static str {
    if !has_any(resources) {
        return BEST_EFFORT;
    }
    let mut qos: Option<&'static str> = None;
    for res in ["cpu", "memory"] {
        let lim = resources["limits"].get(res);
        // v1 defaulting: a limit without a request makes the request.
        let req = resources["requests"].get(res).or(lim);
        let (req, lim) = (quantity(req), quantity(lim));
        let q = if req != lim {
            BURSTABLE
        } else if req == 0 {
            BEST_EFFORT
        } else {
            GUARANTEED
        };
        match qos {
            _ if q == BURSTABLE => return BURSTABLE,
            None => qos = Some(q),
            Some(p) if p != q => return BURSTABLE,
            Some(_) => {}
        }
    }
    qos.unwrap_or(BEST_EFFORT)
}

/// A Kubernetes quantity in nano-units (`100m` and `0.1` are equal, so are `1Gi` and
/// `1073741824`); absent or unparsable counts as zero (the fake does not validate quantities).
fn quantity(v: Option<&Value>) -> i128 {
    let text = match v {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return 0,
    };
    parse_quantity(&text).unwrap_or(0)
}

fn parse_quantity(text: &str) -> Option<i128> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let negative = int.starts_with('-');
    let int = int.trim_start_matches(['+', '-']);
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // Mantissa × 10^scale, nano-units: value = digits × 10^(9 - frac.len()).
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let mut nano = digits.checked_mul(10i128.checked_pow(9)?)?;
    let mut div = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let (mul, exp10): (i128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        s if s.starts_with(['e', 'E']) => (1, s[1..].parse().ok()?),
        _ => return None,
    };
    nano = nano.checked_mul(mul)?;
    if exp10 >= 0 {
        nano = nano.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
    } else {
        div = div.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
    }
    // Below a nano-unit rounds up, as the API's canonical form does.
    let value = (nano + div - 1) / div;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn quantities_compare_by_value_across_forms() {
        assert_eq!(parse_quantity("100m"), parse_quantity("0.1"));
        assert_eq!(parse_quantity("1Gi"), parse_quantity("1073741824"));
        assert_eq!(parse_quantity("1k"), parse_quantity("1e3"));
        assert_eq!(parse_quantity("1.5"), Some(1_500_000_000));
        assert_eq!(parse_quantity("250m"), Some(250_000_000));
        assert_ne!(parse_quantity("1G"), parse_quantity("1Gi"));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity("1Xi"), None);
    }
}
