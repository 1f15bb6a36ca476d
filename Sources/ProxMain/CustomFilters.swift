import ProxCore
import ProxFilterMaintenance
import ProxFilterTenant

/// The custom filters of `filters/`, one line each. Adding one: a folder `filters/<name>/`
/// (a SwiftPM target depending only on ProxCore, declared in Package.swift and listed in
/// ProxMain's dependencies), and one line here. docs/FILTERS.md walks through it.
enum CustomFilters {
    static func register(into r: inout FilterRegistry) throws(FilterRegistry.DuplicateName) {
        try r.register(FilterDescriptor(MaintenanceFactory.self))  // filters/maintenance
        try r.register(FilterDescriptor(TenantFactory.self))       // filters/tenant
    }
}
