//! Session tokens and instance ids: random UUID v4 from the OS random source.

use std::io::Read;

pub fn uuid_v4() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

/// `fl_` + UUID v4 (server.md section 7).
pub fn generate() -> std::io::Result<String> {
    Ok(format!("fl_{}", uuid_v4()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_is_a_v4_uuid_with_prefix() {
        let t = super::generate().unwrap();
        assert_eq!(t.len(), 3 + 36);
        assert!(t.starts_with("fl_"));
        assert_eq!(&t[3 + 14..3 + 15], "4");
        assert_ne!(t, super::generate().unwrap());
    }
}
