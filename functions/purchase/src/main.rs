//! `purchase` Lambda function: see `flash_sale::http::purchase_function`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    flash_sale::lambda::run_with_admission_key(flash_sale::http::purchase_function).await
}
