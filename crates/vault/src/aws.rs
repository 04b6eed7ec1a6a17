//! The production master key: AWS KMS.
//!
//! Workspace keys come from `GenerateDataKey` (AES_256), open with `Decrypt`, and move to a
//! new master key with `ReEncrypt`, always under the encryption context of docs/design.md section 2,
//! so a wrapped key copied to another workspace or version does not open. KMS returns the
//! plaintext key in a buffer it does not wipe: it is copied into a zeroizing box and the
//! buffer wiped at once.

use aws_sdk_kms::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    primitives::Blob,
    types::DataKeySpec,
};
use secrecy::SecretBox;
use zeroize::Zeroize;

use crate::{DataKey, KeyContext, KeyProvider, ProviderError, WrappedKey};

/// Where to find the KMS key, and how to reach KMS.
#[derive(Debug, Clone)]
pub struct AwsKmsSettings {
    /// The master key: key id, ARN or `alias/...`.
    pub key_id: String,
    /// The AWS region.
    pub region: String,
    /// Another endpoint than AWS's (an emulator in tests).
    pub endpoint: Option<String>,
}

/// A master key in AWS KMS.
pub struct AwsKmsProvider {
    client: Client,
    key_id: String,
}

impl AwsKmsProvider {
    /// A provider over a configured KMS client and a master key.
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }

    /// The HTTPS client for KMS: rustls on ring, as everywhere else in the engine.
    pub fn http_client() -> aws_sdk_kms::config::SharedHttpClient {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
    }

    /// A provider whose client has fixed credentials (emulators and tests; production uses the
    /// standard AWS credential chain, configured by the binary).
    pub fn with_static_credentials(settings: &AwsKmsSettings, access_key: &str, secret_key: &str) -> Self {
        Self::new(Self::static_client(settings, access_key, secret_key), settings.key_id.clone())
    }

    /// A KMS client with fixed credentials (emulators and tests).
    pub fn static_client(settings: &AwsKmsSettings, access_key: &str, secret_key: &str) -> Client {
        let creds = aws_credential_types::Credentials::from_keys(access_key, secret_key, None);
        let mut conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new(settings.region.clone()))
            .credentials_provider(creds)
            .http_client(Self::http_client());
        if let Some(endpoint) = &settings.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Client::from_conf(conf.build())
    }

    fn wrapped(
        &self,
        context: KeyContext,
        blob: Option<Blob>,
        key_id: Option<String>,
    ) -> Result<WrappedKey, ProviderError> {
        let blob = blob.ok_or_else(|| unavailable("KMS returned no ciphertext"))?.into_inner();
        Ok(WrappedKey {
            context,
            provider: self.name().into(),
            kms_key_id: key_id.unwrap_or_else(|| self.key_id.clone()),
            blob,
        })
    }
}

fn unavailable(why: &'static str) -> ProviderError {
    ProviderError::Unavailable(why.into())
}

/// Copies a plaintext key out of KMS's buffer into a zeroizing box and wipes the buffer.
fn take_key(plaintext: Option<Blob>, context: KeyContext) -> Result<DataKey, ProviderError> {
    let mut bytes = plaintext.ok_or_else(|| unavailable("KMS returned no plaintext key"))?.into_inner();
    let key = <[u8; 32]>::try_from(bytes.as_slice()).map(|k| SecretBox::new(Box::new(k)));
    bytes.zeroize();
    key.map_err(|_| ProviderError::Rejected(context))
}

/// KMS error codes that mean the wrapped key will never open as it is: tampered, moved, or
/// wrapped by another key. Anything else (throttling, timeouts, KMS internal errors, access
/// being fixed) may pass, and is retried with backoff.
const PERMANENT: &[&str] = &["InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"];

/// KMS error codes about the master key itself (deleted, disabled, pending deletion): an
/// operator's matter, never a reason to give up on a tenant's credential.
const KEY_STATE: &[&str] = &["NotFoundException", "DisabledException", "KMSInvalidStateException"];

fn classify<E, R>(err: SdkError<E, R>, context: KeyContext) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.as_service_error().and_then(|e| e.code()) {
        Some(code) if PERMANENT.contains(&code) => ProviderError::Rejected(context),
        Some(code) if KEY_STATE.contains(&code) => {
            let reason = aws_sdk_kms::error::DisplayErrorContext(&err).to_string();
            ProviderError::Refused { key_id: "the master key of this workspace key".into(), reason }
        }
        // The SDK's errors name the operation and KMS's message, never key material.
        _ => ProviderError::Unavailable(Box::new(err)),
    }
}

#[async_trait::async_trait]
impl KeyProvider for AwsKmsProvider {
    fn name(&self) -> &'static str {
        "aws-kms"
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate(&self, context: KeyContext) -> Result<(DataKey, WrappedKey), ProviderError> {
        let [(k1, v1), (k2, v2)] = context.pairs();
        let mut out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(k1, v1)
            .encryption_context(k2, v2)
            .send()
            .await
            .map_err(|e| classify(e, context))?;
        let key = take_key(out.plaintext.take(), context)?;
        let wrapped = self.wrapped(context, out.ciphertext_blob.take(), out.key_id.take())?;
        Ok((key, wrapped))
    }

    async fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, ProviderError> {
        let context = wrapped.context;
        if wrapped.provider != self.name() {
            // A local fingerprint is not a KMS key id: say what is wrong instead of asking KMS.
            return Err(ProviderError::WrongMasterKey {
                context,
                expected: format!("{}:{}", self.name(), self.key_id),
                found: format!("{}:{}", wrapped.provider, wrapped.kms_key_id),
            });
        }
        let [(k1, v1), (k2, v2)] = context.pairs();
        // Naming the key makes KMS refuse a blob wrapped by any other key.
        let mut out = self
            .client
            .decrypt()
            .key_id(&wrapped.kms_key_id)
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .encryption_context(k1, v1)
            .encryption_context(k2, v2)
            .send()
            .await
            .map_err(|e| classify(e, context))?;
        // KMS refuses a blob of another key when the key is named; check what answered anyway
        // (emulators do not all refuse), so a blob can never open under a key it does not name.
        let answered = out.key_id.as_deref().unwrap_or_default();
        let named = &wrapped.kms_key_id;
        if answered != named && !answered.ends_with(&format!("/{named}")) {
            let key = take_key(out.plaintext.take(), context);
            drop(key);
            return Err(ProviderError::Rejected(context));
        }
        take_key(out.plaintext.take(), context)
    }

    async fn verify(&self) -> Result<(), ProviderError> {
        // DescribeKey answers for a key that does not exist, lives in another region or may not
        // be used by this role with the reason, before any tenant's send depends on it.
        let out = self.client.describe_key().key_id(&self.key_id).send().await.map_err(|e| ProviderError::Refused {
            key_id: self.key_id.clone(),
            reason: aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
        })?;
        match out.key_metadata.map(|m| m.enabled) {
            Some(true) => Ok(()),
            _ => Err(ProviderError::Refused { key_id: self.key_id.clone(), reason: "the key is disabled".into() }),
        }
    }

    async fn rewrap(&self, wrapped: &WrappedKey) -> Result<WrappedKey, ProviderError> {
        let context = wrapped.context;
        let [(k1, v1), (k2, v2)] = context.pairs();
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .source_key_id(&wrapped.kms_key_id)
            .source_encryption_context(k1, v1.clone())
            .source_encryption_context(k2, v2.clone())
            .destination_key_id(&self.key_id)
            .destination_encryption_context(k1, v1)
            .destination_encryption_context(k2, v2)
            .send()
            .await
            .map_err(|e| classify(e, context))?;
        self.wrapped(context, out.ciphertext_blob, out.key_id)
    }
}
