import ProxCore

public enum RequestIDFactory: FilterFactory {
    public static let name = "request_id"
    public static let summary = "Keeps or generates a request id and sets it on the upstream request, the response and `{request_id}`."

    public static func makeStage(_ config: RequestIDConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        RequestIDStage(header: config.header, trustIncoming: config.trustIncoming, setResponseHeader: config.setResponseHeader)
    }
}
