# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write quiesce for a migration window: deny application writes by ACL, prove the server is quiet,
restore every user's rules exactly. Private to this collection; knows nothing about Ansible."""
