//! A TCP proxy in front of PostgreSQL that a test can stop (every connection cut, new ones
//! refused) and start again on the same port: a database that really goes away.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to PostgreSQL that can be stopped and started again on the same port.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let proxy = Proxy { port, tasks: Arc::new(Mutex::new(Vec::new())) };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = Arc::clone(&self.tasks);
        let target = postgres_address();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("tasks").push(pipe);
            }
        });
        self.tasks.lock().expect("tasks").push(accept);
    }

    /// Cuts every connection and refuses new ones.
    pub fn stop(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }

    pub async fn start_again(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("the same port again");
        self.serve(listener);
    }
}

fn postgres_address() -> String {
    let url = url::Url::parse(&crate::admin_url()).expect("url");
    format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432))
}
