//! A throwaway PKI for TLS tests, made with the openssl CLI in a directory:
//! the config, CAs, and leaf certificates they sign. Shared by the unit
//! tests in src/tls.rs and by tests/tls.rs.

use std::path::Path;
use std::process::{Command, Stdio};

/// The openssl config: extension sections for CAs, servers (localhost and
/// 127.0.0.1) and clients, and a minimal `openssl ca` setup.
pub const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[client_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
";

/// Runs `openssl` in `dir` with whitespace-separated `args`.
pub fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args} failed: {err}");
}

/// Writes the config and the `openssl ca` files into `dir`, then makes a
/// self-signed CA `NAME.key` / `NAME.pem` (P-256) for each of `cas`.
pub fn init(dir: &Path, cas: &[&str]) {
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).expect("write a PKI file");
    };
    write("openssl.cnf", OPENSSL_CNF);
    write("index.txt", "");
    write("serial", "1000\n");
    for ca in cas {
        p256_key(dir, ca);
        openssl(
            dir,
            &format!(
                "req -new -x509 -config openssl.cnf -extensions ca_ext -key {ca}.key \
                 -subj /CN={ca} -days 3650 -out {ca}.pem"
            ),
        );
    }
}

/// A new P-256 key in PKCS#8, `NAME.key`.
pub fn p256_key(dir: &Path, name: &str) {
    openssl(
        dir,
        &format!("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {name}.key"),
    );
}

/// `NAME.pem`: the key `NAME.key` (made beforehand) certified for
/// localhost by CA `ca` with config section `ext` (`server_ext` or
/// `client_ext`), valid for ten years from now. Leaves `NAME.csr`.
pub fn leaf(dir: &Path, name: &str, ext: &str, ca: &str, serial: u32) {
    openssl(
        dir,
        &format!(
            "req -new -config openssl.cnf -key {name}.key -subj /CN=localhost -out {name}.csr"
        ),
    );
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -set_serial {serial} \
             -days 3650 -sha256 -extfile openssl.cnf -extensions {ext} -out {name}.pem"
        ),
    );
}

/// `OUT.pem`: a server certificate for `csr.csr`'s key, signed by CA `ca`
/// and valid from `start` to `end` (`YYYYMMDDHHMMSSZ`). `openssl req` and
/// `x509` of OpenSSL 3.0 cannot set past dates; `openssl ca` takes them.
pub fn dated(dir: &Path, csr: &str, ca: &str, out: &str, start: &str, end: &str) {
    openssl(
        dir,
        &format!(
            "ca -batch -config openssl.cnf -notext -cert {ca}.pem -keyfile {ca}.key \
             -in {csr}.csr -startdate {start} -enddate {end} \
             -extfile openssl.cnf -extensions server_ext -out {out}.pem"
        ),
    );
}
