import ProxCore

public enum MaintenanceFactory: FilterFactory {
    public static let name = "maintenance"
    public static let summary = "Answers 503 (with Retry-After) during maintenance windows or when switched on; allow-listed clients pass."

    public static func makeStage(_ config: MaintenanceConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        MaintenanceStage(
            manual: config.enabled,
            windows: config.windows.map { .init(start: $0.start, end: $0.end) },
            allow: config.allow,
            status: config.status,
            body: config.body,
            contentType: config.contentType,
            retryAfterSeconds: config.retryAfter.map { $0 / 1000 })
    }
}
