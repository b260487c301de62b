//! `purchase` Lambda function: see `flash_sale::http::purchase_function`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    flash_sale::lambda::run_with_admission_key(flash_sale::http::purchase_function).await
}
