"""Packet decoding (link, IP, TCP, UDP), pcap/pcapng reading and the flow table."""
