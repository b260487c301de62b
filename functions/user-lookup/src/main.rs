//! `user-lookup` Lambda function: see `flash_sale::http::user_lookup_function`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    flash_sale::lambda::run(flash_sale::http::user_lookup_function).await
}
