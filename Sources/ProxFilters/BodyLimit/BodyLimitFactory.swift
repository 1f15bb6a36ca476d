import ProxCore

public enum BodyLimitFactory: FilterFactory {
    public static let name = "body_limit"
    public static let summary = "Refuses request bodies over a size with 413, for Content-Length and chunked bodies."

    public static func makeStage(_ config: BodyLimitConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        BodyLimitStage(maxBytes: config.maxBytes)
    }
}
