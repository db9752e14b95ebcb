//! Kubernetes resource quantities (`500m`, `2`, `512Mi`, `1G`), because the
//! deployment file speaks Kubernetes and the container engines do not.

/// The value of a quantity in base units (cores, bytes); `None` when it is
/// not a quantity Kubernetes accepts.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then_some(n * factor)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_the_suffixes_kubernetes_uses() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("1Gb"), None);
        assert_eq!(parse(""), None);
    }
}
