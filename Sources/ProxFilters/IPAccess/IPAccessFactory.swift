import ProxCore

public enum IPAccessFactory: FilterFactory {
    public static let name = "ip_access"
    public static let summary = "Allows or refuses clients by address (CIDR lists; deny wins)."

    public static func makeStage(_ config: IPAccessConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        IPAccessStage(allow: config.allow, deny: config.deny)
    }
}
