#!/user/bin/python
#
# map for restmq map/reduce example
# it counts a file's word and post to a queue called reducer
# output: {'filename':sys.argv[1], 'count': No of words}
#

import sys, json
import urllib.parse, urllib.request, urllib.error

QUEUENAME = 'reducer'

def wc(file):
    try:
        f = open(file, 'r')
        words = f.read()
        f.close()
    except Exception as e:
        print("Exception: %s" % e)

    return len(words.split())

def enqueue(filename, count):
    try:
        msg={'filename': filename, 'count':count}
        data = urllib.parse.urlencode({'queue':QUEUENAME, 'value':json.dumps(msg)}).encode()
        r = urllib.request.Request('http://localhost:8888/', data)
        f = urllib.request.urlopen(r)
        data = f.read()
        f.close()
    except urllib.error.URLError as e:
        print(e)

    return "Sent: %s: %d" %(filename, count)

if __name__ == '__main__':
    if len(sys.argv) < 2:
        print("Usage: map.py <file_to_count.txt>")
        sys.exit(-1)
    count = wc(sys.argv[1])
    print(enqueue(sys.argv[1], count))
