//! A throw-away PKI made with the real `openssl` command line: a CA, a server certificate for
//! 127.0.0.1 / localhost, a client certificate, and a second CA that signed nothing ferrule
//! meets (the "wrong CA"). EC P-256 keys (fast to make), PEM files, valid for a day.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::process;
use super::wait::TIMEOUT;

/// The files of the PKI, in a temporary directory that goes away with the value.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    /// Makes `ca.pem`/`ca.key`, `server.pem`/`server.key`, `client.pem`/`client.key` (CN
    /// `ferrule-gw`) and `other-ca.pem`/`other-ca.key`.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("ferrule-pki-")
            .tempdir()
            .expect("a temporary directory for the PKI");
        let pki = Pki { dir };
        pki.ca("ca", "ferrule test CA");
        pki.ca("other-ca", "some other CA");
        pki.leaf(
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        pki.leaf("client", "ferrule-gw", "extendedKeyUsage=clientAuth\n");
        pki
    }

    /// The path of one of its files, e.g. `ca.pem`.
    pub fn path(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        assert!(path.exists(), "no {name} in the test PKI");
        path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn ca(&self, name: &str, cn: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-subj",
            &format!("/CN={cn}"),
        ]);
    }

    fn leaf(&self, name: &str, cn: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.path().join(&ext),
            format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n{extensions}"),
        )
        .expect("write the extensions file");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(self.dir.path());
        let done = process::run("openssl", &mut cmd, TIMEOUT);
        assert!(
            done.status.success(),
            "openssl {} failed ({}):\n{}",
            args.join(" "),
            done.status,
            done.tail()
        );
    }
}
