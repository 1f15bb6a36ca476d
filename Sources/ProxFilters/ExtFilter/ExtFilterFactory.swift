import ProxCore

public enum ExtFilterFactory: FilterFactory {
    public static let name = "ext_filter"
    public static let summary = "Asks an external HTTP service (any language) to continue, edit headers or answer, with a timeout and fail_mode open or closed."

    public static func makeStage(_ config: ExtFilterConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        // A url that does not parse was reported by the config's validate(): such a config is
        // never served, so the stage made for it only has to exist.
        let parsed = try? ExtFilterURL.parse(config.url).get()
        let url = parsed ?? ExtFilterURL(host: "0.0.0.0", port: 9, path: "/", hostHeader: "invalid")
        return ExtFilterStage(url: url, service: ExtFilterServices.service(host: url.host, port: url.port),
                              timeoutMillis: config.timeout, failOpen: config.failMode == "open",
                              failureStatus: config.failureStatus, maxBodyBytes: Int(config.maxBodyBytes),
                              maxIdleConnections: config.maxIdleConnections, maxConnections: config.maxConnections)
    }
}
