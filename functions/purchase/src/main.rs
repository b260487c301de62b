//! `purchase` Lambda function: see `flash_sale::http::purchase`.

use lambda_http::{Error, Request, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let app = flash_sale::App::from_env().await?;
    lambda_http::run(service_fn(|req: Request| async move {
        Ok::<_, Error>(flash_sale::http::purchase(app, req).await)
    }))
    .await
}
