import ProxMain

ProxMain.run()
