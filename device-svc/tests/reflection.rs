//! gRPC reflection answers in both protocol versions grpcurl speaks (v1, and v1alpha for
//! releases such as 1.8.6), over mTLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Harness;
use service_kit::identity::Role;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_reflection::pb::{v1, v1alpha};

async fn call<Req, Resp>(harness: &Harness, path: &'static str, request: Req) -> Resp
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let channel = test_support::channel(harness.addr(), &harness.pki.operator("reflector", Role::Viewer))
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let mut stream = grpc
        .streaming(
            tonic::Request::new(tokio_stream::iter([request])),
            PathAndQuery::from_static(path),
            codec,
        )
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("one answer")
}

#[tokio::test]
async fn reflection_v1_lists_the_device_service() {
    let harness = Harness::start().await;
    let response: v1::ServerReflectionResponse = call(
        &harness,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
    )
    .await;
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"portcullis.device.v1.DeviceService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test]
async fn reflection_v1alpha_describes_the_device_service() {
    let harness = Harness::start().await;
    let response: v1alpha::ServerReflectionResponse = call(
        &harness,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "portcullis.device.v1.DeviceService".into(),
                ),
            ),
        },
    )
    .await;
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        response.message_response
    else {
        panic!("not a file descriptor");
    };
    use prost::Message;
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice()).unwrap();
    let service = file.service.iter().find(|s| s.name() == "DeviceService").unwrap();
    assert!(service.method.iter().any(|m| m.name() == "SuspendDevice"));
}
