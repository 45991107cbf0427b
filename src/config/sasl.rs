//! A Kafka client's SASL password, kept out of gateway.toml: the Kafka source's and the Kafka
//! destination's `sasl_password_file` (a file) or `sasl_password_env` (an environment variable,
//! read first), trimmed, as a webhook's signing secret. The config names where the password is;
//! it is read when the client starts and goes straight to librdkafka's `sasl.password`. A
//! password written in `properties` as `sasl.password` still works, but then the config file
//! holds a secret.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a Kafka client's SASL password is read from, paths resolved. Holds no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslPassword {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

/// The `security.protocol` values under which librdkafka authenticates with SASL.
const SASL_PROTOCOLS: &[&str] = &["sasl_ssl", "sasl_plaintext"];
/// The SASL mechanisms that use `sasl.password` (librdkafka's default, GSSAPI, and OAUTHBEARER
/// do not: a password given for them would go unused).
const PASSWORD_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl SaslPassword {
    pub fn new(file: Option<PathBuf>, env: Option<String>) -> SaslPassword {
        SaslPassword { file, env }
    }

    /// Checks a spec's `sasl_password_file`/`sasl_password_env` against its `properties`: the
    /// password is given once, and the client is set up to use it (without `security.protocol`
    /// = `sasl_*`, librdkafka would connect without authenticating and say nothing of the
    /// password). The message names settings, never a value.
    pub fn validate(
        file: Option<&str>,
        env: Option<&str>,
        properties: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let blank = |s: &str| s.trim().is_empty();
        if file.is_some_and(blank) || env.is_some_and(blank) {
            return Err("`sasl_password_file` and `sasl_password_env` must not be empty".into());
        }
        if file.is_none() && env.is_none() {
            return Ok(());
        }
        if properties.contains_key("sasl.password") {
            return Err(
                "the SASL password is given twice: `sasl.password` in `properties` and `sasl_password_file`/`sasl_password_env`; keep one (the file or the variable keeps it out of the config)"
                    .into(),
            );
        }
        let protocol = properties
            .get("security.protocol")
            .map(|p| p.to_ascii_lowercase());
        if !protocol
            .as_deref()
            .is_some_and(|p| SASL_PROTOCOLS.contains(&p))
        {
            return Err(
                "`sasl_password_file`/`sasl_password_env` need `security.protocol` = \"sasl_ssl\" (or \"sasl_plaintext\") in `properties`: otherwise the client does not authenticate"
                    .into(),
            );
        }
        // `sasl.mechanism` is librdkafka's alias of `sasl.mechanisms`.
        let mechanism = properties
            .get("sasl.mechanisms")
            .or_else(|| properties.get("sasl.mechanism"))
            .map(|m| m.trim().to_ascii_uppercase());
        if !mechanism
            .as_deref()
            .is_some_and(|m| PASSWORD_MECHANISMS.contains(&m))
        {
            return Err(
                "`sasl_password_file`/`sasl_password_env` need `sasl.mechanisms` = \"SCRAM-SHA-512\", \"SCRAM-SHA-256\" or \"PLAIN\" in `properties`: librdkafka's default (GSSAPI) does not use a password"
                    .into(),
            );
        }
        if !properties.contains_key("sasl.username") {
            return Err(
                "`sasl_password_file`/`sasl_password_env` need `sasl.username` in `properties`"
                    .into(),
            );
        }
        Ok(())
    }

    /// The password: the environment variable first, then the file, trimmed. `None` when none
    /// is configured. Errors name the variable or the file, never what they hold.
    pub fn read(&self) -> Result<Option<String>, String> {
        self.read_with(|var| std::env::var_os(var))
    }

    /// [`read`](Self::read) with the environment given (tests do not change the process's).
    fn read_with(
        &self,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Option<String>, String> {
        if let Some(var) = &self.env
            && let Some(v) = env(var)
        {
            let v = v
                .into_string()
                .map_err(|_| format!("the SASL password in `{var}` is not UTF-8"))?;
            if v.trim().is_empty() {
                return Err(format!("the SASL password in `{var}` is empty"));
            }
            return Ok(Some(v.trim().to_string()));
        }
        match &self.file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    format!(
                        "cannot read the SASL password file {}: {}",
                        f.display(),
                        e.kind()
                    )
                })?;
                if text.trim().is_empty() {
                    return Err(format!("the SASL password file {} is empty", f.display()));
                }
                Ok(Some(text.trim().to_string()))
            }
            None => match &self.env {
                Some(var) => Err(format!(
                    "the environment variable `{var}` (`sasl_password_env`) is not set"
                )),
                None => Ok(None),
            },
        }
    }

    /// Sets librdkafka's `sasl.password` when one is configured.
    pub fn apply(&self, cfg: &mut rdkafka::ClientConfig) -> Result<(), String> {
        if let Some(p) = self.read()? {
            cfg.set("sasl.password", p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_password_file_needs_a_sasl_protocol_and_a_user_and_no_inline_password() {
        let ok = props(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "pnp"),
        ]);
        assert!(SaslPassword::validate(Some("kafka.pw"), None, &ok).is_ok());
        assert!(SaslPassword::validate(None, Some("KAFKA_PW"), &ok).is_ok());
        // Nothing configured: nothing to check.
        assert!(SaslPassword::validate(None, None, &props(&[])).is_ok());

        let mut twice = ok.clone();
        twice.insert("sasl.password".into(), "inline-secret".into());
        let e = SaslPassword::validate(Some("kafka.pw"), None, &twice).unwrap_err();
        assert!(e.contains("twice") && !e.contains("inline-secret"), "{e}");

        let mut plain = ok.clone();
        plain.insert("security.protocol".into(), "ssl".into());
        let e = SaslPassword::validate(Some("kafka.pw"), None, &plain).unwrap_err();
        assert!(e.contains("security.protocol"), "{e}");
        let mut none = ok.clone();
        none.remove("security.protocol");
        assert!(SaslPassword::validate(Some("kafka.pw"), None, &none).is_err());

        let mut default_mechanism = ok.clone();
        default_mechanism.remove("sasl.mechanisms");
        let e = SaslPassword::validate(Some("kafka.pw"), None, &default_mechanism).unwrap_err();
        assert!(e.contains("sasl.mechanisms"), "{e}");
        let mut oauth = ok.clone();
        oauth.insert("sasl.mechanisms".into(), "OAUTHBEARER".into());
        assert!(SaslPassword::validate(Some("kafka.pw"), None, &oauth).is_err());
        let mut alias = default_mechanism.clone();
        alias.insert("sasl.mechanism".into(), "scram-sha-256".into());
        assert!(SaslPassword::validate(Some("kafka.pw"), None, &alias).is_ok());

        let mut no_user = ok.clone();
        no_user.remove("sasl.username");
        let e = SaslPassword::validate(None, Some("KAFKA_PW"), &no_user).unwrap_err();
        assert!(e.contains("sasl.username"), "{e}");

        assert!(SaslPassword::validate(Some(""), None, &ok).is_err());
        assert!(SaslPassword::validate(None, Some(" "), &ok).is_err());
    }

    #[test]
    fn the_variable_comes_first_then_the_file_trimmed_and_errors_quote_no_password() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("kafka.pw");
        std::fs::write(&f, "from-the-file\n").unwrap();
        let from_file = SaslPassword::new(Some(f.clone()), None);
        assert_eq!(from_file.read().unwrap().as_deref(), Some("from-the-file"));

        let env =
            |var: &str| (var == "PNP_TEST_SASL_PW_FIRST").then(|| " from-the-variable ".into());
        let both = SaslPassword::new(Some(f.clone()), Some("PNP_TEST_SASL_PW_FIRST".into()));
        assert_eq!(
            both.read_with(env).unwrap().as_deref(),
            Some("from-the-variable")
        );
        // A variable that is not set falls back to the file.
        let unset = SaslPassword::new(Some(f.clone()), Some("PNP_TEST_SASL_PW_UNSET".into()));
        assert_eq!(
            unset.read_with(env).unwrap().as_deref(),
            Some("from-the-file")
        );
        let only_unset = SaslPassword::new(None, Some("PNP_TEST_SASL_PW_UNSET".into()));
        let e = only_unset.read_with(env).unwrap_err();
        assert!(e.contains("PNP_TEST_SASL_PW_UNSET"), "{e}");

        std::fs::write(&f, " \n").unwrap();
        let e = from_file.read().unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let missing = SaslPassword::new(Some(d.path().join("nope.pw")), None);
        let e = missing.read().unwrap_err();
        assert!(e.contains("nope.pw"), "{e}");
        assert_eq!(SaslPassword::default().read().unwrap(), None);
    }
}
