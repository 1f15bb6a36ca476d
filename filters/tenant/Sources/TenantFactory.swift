import ProxCore

public enum TenantFactory: FilterFactory {
    public static let name = "tenant"
    public static let summary = "Finds the tenant from the Host or a header, sends it upstream in X-Tenant, refuses unknown tenants."

    public static func makeStage(_ config: TenantConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        let source: TenantStage.Source
        if let h = config.header {
            source = .header(h)
        } else {
            var hosts: [String: String] = [:]
            for e in config.hosts { hosts[normalizeHost(e.key)] = e.value }
            source = .host(exact: hosts, regex: config.hostRegex?.value)
        }
        let status = config.status ?? (config.header == nil ? 421 : 403)
        return TenantStage(source: source, known: config.tenants.map(\.value), setHeader: config.setHeader,
                           unknownStatus: status, defaultTenant: config.allowUnknown ? config.defaultTenant?.value : nil)
    }
}
