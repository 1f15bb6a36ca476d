import AcmeFilters
import ProxCore
import ProxMain

// Prox's CLI with the shipped filters plus ours. A name already taken stops it at startup,
// naming both registrations.
ProxMain.run(extraFilters: [
    FilterDescriptor(APIKeyFactory.self),
])
