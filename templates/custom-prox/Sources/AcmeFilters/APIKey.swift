import ProxCore

/// Config of the `api_key` filter.
public struct APIKeyConfig: ConfigObject {
    public var header = HeaderName("X-Api-Key")
    public var keys: [String] = []

    public init() {}

    public static let doc = "Refuses requests whose API key header is missing or not one of `keys`, with 401 (`X-Prox-Error: api_key`)."

    public static var fields: [ConfigField<Self>] {[
        .field("header", \.header, .headerName, doc: "The request header holding the key."),
        .field("keys", \.keys, ConfigType.string(minLength: 16).list(minItems: 1), required: true,
               doc: "The accepted keys, at least 16 characters each."),
    ]}
}

public enum APIKeyFactory: FilterFactory {
    public static let name = "api_key"
    public static let summary = "Refuses requests without one of the configured API keys (401)."

    public static func makeStage(_ config: APIKeyConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        APIKeyStage(header: config.header, keys: config.keys.map { Array($0.utf8) })
    }
}

/// Compares the header's bytes with the keys, made into bytes at compile time.
public struct APIKeyStage: Stage {
    public let header: HeaderName
    let keys: [[UInt8]]

    public var kind: String { APIKeyFactory.name }

    public func request(_ ctx: RequestContext) -> Verdict {
        let ok = ctx.head.fields.firstSlot(header).map { slot in
            ctx.head.fields.withValueBytes(ofSlot: slot) { v in keys.contains { $0.elementsEqual(v) } }
        } ?? false
        if ok {
            ctx.record(kind, looked: header.name, decided: "pass", why: "a configured key")
            return .next
        }
        ctx.record(kind, looked: header.name, decided: "refuse 401", why: "missing or not a configured key")
        if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
        return .respond(LocalResponse.error(401, "api_key", requestID: ctx.requestID))
    }
}
