import ProxCore
import ProxFilterMaintenance
import ProxFilterTenant

/// The custom filters of `filters/`, one line each. Adding one: a folder `filters/<name>/`
/// (a SwiftPM target depending only on ProxCore, declared in Package.swift and listed in
/// ProxMain's dependencies), and one line here. docs/FILTERS.md walks through it.
enum CustomFilters {
    static let descriptors: [FilterDescriptor] = [
        FilterDescriptor(MaintenanceFactory.self),  // filters/maintenance
        FilterDescriptor(TenantFactory.self),       // filters/tenant
    ]
}
