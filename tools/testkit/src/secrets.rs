//! `FakeSecretsManager`: a stand-in for Secrets Manager's `GetSecretValue` on a loopback port, for
//! the admission key's secret. A fake, because no local emulator of Secrets Manager exists; it
//! keeps the service's staging labels (`AWSCURRENT`, `AWSPREVIOUS`) and answers a missing one
//! with `ResourceNotFoundException`, as the service does.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::{header, read_request};

#[derive(Debug, Default)]
struct SecretState {
    current: Option<String>,
    previous: Option<String>,
    reads: u32,
}

/// One secret, `AWSCURRENT` and `AWSPREVIOUS`, served as `GetSecretValue`.
pub struct FakeSecretsManager {
    pub endpoint: String,
    pub secret_id: String,
    state: Arc<Mutex<SecretState>>,
}

impl FakeSecretsManager {
    /// A secret whose current version is `value`.
    pub async fn start(value: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(SecretState { current: Some(value.to_owned()), ..SecretState::default() }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, shared.clone()));
            }
        });
        let secret_id = "arn:aws:secretsmanager:us-east-1:000000000000:secret:admission-key-AbCdEf".to_owned();
        Self { endpoint, secret_id, state }
    }

    /// A rotation: `value` becomes `AWSCURRENT`, the current version `AWSPREVIOUS`.
    pub fn rotate(&self, value: &str) {
        let mut s = self.state.lock().unwrap();
        s.previous = s.current.replace(value.to_owned());
    }

    /// `GetSecretValue` calls answered so far.
    pub fn reads(&self) -> u32 {
        self.state.lock().unwrap().reads
    }
}

async fn serve(mut conn: TcpStream, state: Arc<Mutex<SecretState>>) {
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut conn, &mut buf).await {
        let op = header(&request.head, "x-amz-target").unwrap_or_default().to_owned();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let (status, reply) = if op != "secretsmanager.GetSecretValue" {
            (400, json!({ "__type": "InvalidRequestException", "message": format!("unexpected {op}") }))
        } else {
            let mut s = state.lock().unwrap();
            s.reads += 1;
            let stage = body["VersionStage"].as_str().unwrap_or("AWSCURRENT");
            let value = match stage {
                "AWSCURRENT" => s.current.clone(),
                "AWSPREVIOUS" => s.previous.clone(),
                _ => None,
            };
            match value {
                Some(v) => (
                    200,
                    json!({
                        "ARN": body["SecretId"],
                        "Name": "admission-key",
                        "VersionId": format!("{:032x}", fastrand::u128(..)),
                        "SecretString": v,
                        "VersionStages": [stage],
                        "CreatedDate": 1.7e9,
                    }),
                ),
                None => (
                    400,
                    json!({
                        "__type": "ResourceNotFoundException",
                        "message": format!("Secrets Manager can't find the specified secret value for staging label: {stage}"),
                    }),
                ),
            }
        };
        let text = reply.to_string();
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: fake\r\n\
             Content-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
