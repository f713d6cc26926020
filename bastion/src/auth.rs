//! The authentication decision of one connection: which public key or user certificate may
//! log in, from this client, now; the count of failed attempts (sshd's `MaxAuthTries`); and,
//! after a key reload, whether a logged-in identity is still allowed.
//!
//! Revocation is checked in one place ([`revocation`]) for every path: a plain key, a
//! certificate's key and its CA, and the re-check of open connections. So is key strength
//! (`key_strength`): the signature algorithm of every request, the RSA size of every key, and
//! whether a security key's line (or certificate) waives the touch this server cannot check. Each decision is an
//! `auth` audit event with the line or certificate that decided. This module knows nothing of
//! russh's callbacks or of channels: `session` turns its verdicts into protocol replies.

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey};

use crate::audit;
use crate::authorized_keys::AuthorizedKeys;
use crate::certificates::{check_user_certificate, CertificateAuthority};
pub use crate::key_options::now_unix;
use crate::key_options::KeyRestrictions;
use crate::key_store::KeyStore;
use crate::key_strength::{
    check_certificate_user_presence, check_signature_algorithm, check_user_presence,
};

/// What let a connection in, to re-check it when the key files change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// SHA256 fingerprint of the user's key (the certificate's key for a certificate login).
    pub key_fingerprint: String,
    /// SHA256 fingerprint of the CA, for a certificate login.
    pub ca_fingerprint: Option<String>,
}

/// A successful login: who, the options of the line that let them in, and the credential
/// (kept to re-check those options when the key files change).
#[derive(Debug, Clone)]
pub struct Login {
    pub identity: Identity,
    pub restrictions: KeyRestrictions,
    pub credential: Credential,
}

/// What a connection logged in with.
#[derive(Debug, Clone)]
pub enum Credential {
    Key(PublicKey),
    /// A certificate is re-checked against its validity at login time (a certificate that
    /// expires during a connection does not end it, as in sshd); its CA line's options are
    /// re-checked against the current time.
    Certificate {
        certificate: Box<Certificate>,
        logged_in_at: u64,
    },
}

/// What the protocol layer should answer.
#[derive(Debug)]
pub enum Verdict {
    /// The offered key may be used: ask for (or check) its signature.
    Proceed,
    /// Logged in.
    LoggedIn(Box<Login>),
    /// Refused; `disconnect` once the attempts are used up.
    Rejected { disconnect: bool },
}

/// Which revoked key stands in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Key,
    Ca(String),
}

/// The one revocation check: the key itself, then the CA that signed it (if any).
pub fn revocation(keys: &AuthorizedKeys, key_fp: &str, ca_fp: Option<&str>) -> Option<Revoked> {
    if keys.revoked.is_revoked(key_fp) {
        return Some(Revoked::Key);
    }
    ca_fp
        .filter(|ca| keys.revoked.is_revoked(ca))
        .map(|ca| Revoked::Ca(ca.to_owned()))
}

impl Identity {
    /// Is this identity still allowed by the (reloaded) key set? `Err` says why not.
    pub fn still_allowed(&self, keys: &AuthorizedKeys) -> Result<(), String> {
        let ca = self.ca_fingerprint.as_deref();
        match revocation(keys, &self.key_fingerprint, ca) {
            Some(Revoked::Key) => return Err(format!("key {} was revoked", self.key_fingerprint)),
            Some(Revoked::Ca(ca)) => return Err(format!("certificate authority {ca} was revoked")),
            None => {}
        }
        match ca {
            None if keys.keys.iter().any(|k| {
                !k.restrictions.cert_authority && k.fingerprint == self.key_fingerprint
            }) =>
            {
                Ok(())
            }
            None => Err(format!(
                "key {} was removed from the authorized keys",
                self.key_fingerprint
            )),
            Some(ca) if keys.authorities().any(|k| k.fingerprint == ca) => Ok(()),
            Some(ca) => Err(format!("certificate authority {ca} was removed")),
        }
    }
}

impl Login {
    /// After a key reload: may this connection stay, and under which options? `Err` says why
    /// it must close (key removed or revoked, line now `restrict`/`no-port-forwarding`, a past
    /// `expiry-time`, a `from=` that no longer matches, a certificate no longer accepted by its
    /// CA line); `Ok` carries the line's current options, for the connection's later tunnels.
    pub fn recheck(
        &self,
        keys: &AuthorizedKeys,
        client: SocketAddr,
        now: u64,
    ) -> Result<KeyRestrictions, String> {
        self.identity.still_allowed(keys)?;
        let fp = &self.identity.key_fingerprint;
        let rechecked = match &self.credential {
            Credential::Key(key) => check_key(keys, key, fp, client, now).map(|(_, r)| r),
            Credential::Certificate {
                certificate,
                logged_in_at,
            } => check_certificate(
                keys,
                &self.identity.user,
                certificate,
                client,
                *logged_in_at,
            )
            .and_then(|(_, login)| {
                login.restrictions.check_login(client.ip(), now)?;
                Ok(login.restrictions)
            }),
        };
        rechecked.map_err(|why| format!("key {fp}: {why}"))
    }
}

fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Who a user certificate names (key id, principals, serial, CA), for the audit events.
pub fn cert_identity(certificate: &Certificate) -> audit::CertIdentity {
    audit::CertIdentity {
        key_id: certificate.key_id().to_owned(),
        principals: certificate.valid_principals().join(","),
        serial: certificate.serial(),
        ca_fingerprint: fingerprint(certificate.signature_key()),
    }
}

impl Login {
    /// The certificate it logged in with, as the audit events name it; `None` for a key.
    pub fn cert_identity(&self) -> Option<audit::CertIdentity> {
        match &self.credential {
            Credential::Key(_) => None,
            Credential::Certificate { certificate, .. } => Some(cert_identity(certificate)),
        }
    }
}

/// May this plain key log in from `client` at `now`? Returns the detail for the audit event
/// and the options of its line.
pub fn check_key(
    keys: &AuthorizedKeys,
    key: &PublicKey,
    key_fp: &str,
    client: SocketAddr,
    now: u64,
) -> Result<(String, KeyRestrictions), String> {
    if revocation(keys, key_fp, None).is_some() {
        return Err("key is revoked (BASTION_REVOKED_KEYS)".into());
    }
    keys.min_rsa_bits.check(key.key_data(), "key")?;
    let Some(entry) = keys.find(key) else {
        return Err("key not in the authorized keys".into());
    };
    let restrictions = &entry.restrictions;
    restrictions
        .check_login(client.ip(), now)
        .and_then(|()| check_user_presence(key.key_data(), restrictions.no_touch_required))
        .map_err(|why| format!("line {}: {why}", entry.line))?;
    let detail = format!("{} line {}", keys.source, entry.line);
    Ok((detail, entry.restrictions.clone()))
}

/// Could an offer of this key be a certificate we might accept? (russh offers a certificate
/// as its inner key.)
pub fn may_be_certificate(keys: &AuthorizedKeys, key_fp: &str) -> bool {
    keys.authorities().next().is_some() && revocation(keys, key_fp, None).is_none()
}

/// A user certificate: signed by a `cert-authority` line, valid now, for this user, from
/// this address, allowed to forward, nothing revoked, no RSA key (its own or its CA's) below
/// `BASTION_MIN_RSA_BITS`. Returns the audit detail and the login.
pub fn check_certificate(
    keys: &AuthorizedKeys,
    user: &str,
    certificate: &Certificate,
    client: SocketAddr,
    now: u64,
) -> Result<(String, Login), String> {
    let key_fp = fingerprint(certificate.public_key());
    let ca_fp = fingerprint(certificate.signature_key());
    match revocation(keys, &key_fp, Some(&ca_fp)) {
        Some(Revoked::Key) => {
            return Err("the certificate's key is revoked (BASTION_REVOKED_KEYS)".into())
        }
        Some(Revoked::Ca(ca)) => {
            return Err(format!(
                "the signing CA {ca} is revoked (BASTION_REVOKED_KEYS)"
            ))
        }
        None => {}
    }
    let min = keys.min_rsa_bits;
    min.check(certificate.public_key(), "certificate key")?;
    min.check(certificate.signature_key(), "CA key")
        .map_err(|why| format!("{why} (the certificate's signer {ca_fp})"))?;
    let cas: Vec<CertificateAuthority<'_>> = keys
        .authorities()
        .map(|k| CertificateAuthority {
            key: &k.key,
            line: k.line,
            principals: k.restrictions.principals.as_deref(),
        })
        .collect();
    let accepted = check_user_certificate(certificate, user, client.ip(), now, &cas)?;
    let ca = keys
        .authority_at(accepted.ca_line)
        .ok_or_else(|| "certificate authority line vanished".to_owned())?;
    ca.restrictions
        .check_login(client.ip(), now)
        .and_then(|()| {
            check_certificate_user_presence(certificate, ca.restrictions.no_touch_required)
        })
        .map_err(|why| format!("cert-authority line {}: {why}", ca.line))?;
    let detail = format!(
        "certificate id {:?} serial {} principal {:?} signed by CA {} ({} line {})",
        accepted.key_id,
        accepted.serial,
        accepted.principal,
        accepted.ca_fingerprint,
        keys.source,
        accepted.ca_line
    );
    let identity = Identity {
        user: user.to_owned(),
        key_fingerprint: key_fp,
        ca_fingerprint: Some(accepted.ca_fingerprint),
    };
    let restrictions = ca.restrictions.clone();
    let credential = Credential::Certificate {
        certificate: Box::new(certificate.clone()),
        logged_in_at: now,
    };
    Ok((
        detail,
        Login {
            identity,
            restrictions,
            credential,
        },
    ))
}

/// One connection's authentication: its attempts so far, against the live key set.
pub struct Authenticator {
    keys: Arc<KeyStore>,
    conn: u64,
    client: SocketAddr,
    max_tries: u32,
    failures: u32,
}

impl Authenticator {
    pub fn new(keys: Arc<KeyStore>, conn: u64, client: SocketAddr, max_tries: u32) -> Self {
        Authenticator {
            keys,
            conn,
            client,
            max_tries,
            failures: 0,
        }
    }

    /// A key offered for the signature `algorithm` (a probe, or a signed request before its
    /// signature is checked; for a certificate, `key` is its inner key): may the client go on
    /// with it? russh asks this before every certificate login, so the certificate's
    /// algorithm is checked here.
    pub fn offered(&mut self, user: &str, key: &PublicKey, algorithm: &Algorithm) -> Verdict {
        let keys = self.keys.current();
        let fp = fingerprint(key.key_data());
        if let Err(why) = check_signature_algorithm(algorithm) {
            return self.reject(user, &fp, &why);
        }
        match check_key(&keys, key, &fp, self.client, now_unix()) {
            Ok(_) => Verdict::Proceed,
            // With a CA configured, let the signed request through to the certificate check
            // (or to `signed`, which refuses and counts an unknown plain key there).
            Err(_) if may_be_certificate(&keys, &fp) => Verdict::Proceed,
            Err(why) => self.reject(user, &fp, &why),
        }
    }

    /// A key whose signature, of `algorithm`, russh has verified.
    pub fn signed(&mut self, user: &str, key: &PublicKey, algorithm: &Algorithm) -> Verdict {
        let keys = self.keys.current();
        let fp = fingerprint(key.key_data());
        if let Err(why) = check_signature_algorithm(algorithm) {
            return self.reject(user, &fp, &why);
        }
        match check_key(&keys, key, &fp, self.client, now_unix()) {
            Ok((detail, restrictions)) => {
                let identity = Identity {
                    user: user.to_owned(),
                    key_fingerprint: fp,
                    ca_fingerprint: None,
                };
                let credential = Credential::Key(key.clone());
                self.accept(
                    &detail,
                    Login {
                        identity,
                        restrictions,
                        credential,
                    },
                )
            }
            Err(why) => self.reject(user, &fp, &why),
        }
    }

    /// An OpenSSH user certificate whose signature russh has verified.
    pub fn certificate(&mut self, user: &str, certificate: &Certificate) -> Verdict {
        let keys = self.keys.current();
        match check_certificate(&keys, user, certificate, self.client, now_unix()) {
            Ok((detail, login)) => self.accept(&detail, login),
            Err(why) => {
                let cert = cert_identity(certificate);
                let fp = fingerprint(certificate.public_key());
                self.reject_certificate(user, &fp, Some(&cert), &why)
            }
        }
    }

    /// A password attempt: never accepted, but it counts (as in sshd).
    pub fn password(&mut self, user: &str) -> Verdict {
        audit::request_refused(
            self.conn,
            self.client,
            "password",
            &format!("password login attempted for user {user:?}"),
        );
        self.count_failure()
    }

    /// Keyboard-interactive: never offered, refused without counting (as before).
    pub fn keyboard_interactive(&self, user: &str) {
        audit::request_refused(
            self.conn,
            self.client,
            "keyboard-interactive",
            &format!("keyboard-interactive login attempted for user {user:?}"),
        );
    }

    fn accept(&self, detail: &str, login: Login) -> Verdict {
        let id = &login.identity;
        let cert = login.cert_identity();
        audit::auth(
            self.conn,
            self.client,
            &id.user,
            &id.key_fingerprint,
            cert.as_ref(),
            true,
            detail,
        );
        Verdict::LoggedIn(Box::new(login))
    }

    fn reject(&mut self, user: &str, fp: &str, why: &str) -> Verdict {
        self.reject_certificate(user, fp, None, why)
    }

    /// Refuse a login; `cert`: the certificate presented, if any.
    fn reject_certificate(
        &mut self,
        user: &str,
        fp: &str,
        cert: Option<&audit::CertIdentity>,
        why: &str,
    ) -> Verdict {
        audit::auth(self.conn, self.client, user, fp, cert, false, why);
        self.count_failure()
    }

    /// Count a failed key; past the cap, the connection ends (like sshd's MaxAuthTries).
    fn count_failure(&mut self) -> Verdict {
        self.failures += 1;
        let disconnect = self.failures >= self.max_tries;
        if disconnect {
            audit::request_refused(
                self.conn,
                self.client,
                "auth",
                "too many authentication failures (BASTION_MAX_AUTH_TRIES); disconnecting",
            );
        }
        Verdict::Rejected { disconnect }
    }
}
