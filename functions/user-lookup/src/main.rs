//! `user-lookup` Lambda function: see `flash_sale::http::user_lookup`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    flash_sale::lambda::run(flash_sale::http::user_lookup).await
}
